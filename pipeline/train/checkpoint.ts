/**
 * The training checkpoint format: one safetensors file (float32 named tensors) with a JSON
 * value in its metadata under `train_checkpoint`. Written atomically (temp file + rename), so
 * an interrupted write leaves the previous checkpoint whole; read from a path (tensor by
 * tensor through a file handle, never the whole file twice) or from bytes (a stage's blob).
 * Files of the older per-loop formats (pretrain_state.*, perk_loop / ft_icr_loop metadata)
 * are not read: they are refused with a message saying to delete them.
 */
import { dirname } from "node:path";
import {
  encodeSafetensors,
  parseHeader,
  type SafetensorsHeader,
  SafetensorsReader,
  toFloat32,
} from "../model/safetensors.ts";
import { writeFileAtomic } from "../model/atomic.ts";
import type { Tensor, Weights } from "../model/weights.ts";

const KEY = "train_checkpoint";

export interface Checkpoint {
  readonly tensors: Weights;
  /** Any JSON value (Infinity and NaN do not survive JSON: store null). */
  readonly meta: unknown;
}

/** The checkpoint's bytes: tensors in the given order, `meta` as JSON in the metadata. */
export function encodeCheckpoint(tensors: Iterable<[string, Tensor]>, meta: unknown): Uint8Array {
  return encodeSafetensors(tensors, { metadata: { [KEY]: JSON.stringify(meta) } });
}

/** Write atomically, creating the folder if needed. */
export function writeCheckpoint(
  path: string,
  tensors: Iterable<[string, Tensor]>,
  meta: unknown,
): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, encodeCheckpoint(tensors, meta));
}

function metaOf(h: SafetensorsHeader, where: string): unknown {
  const m = h.metadata[KEY];
  if (m === undefined) {
    throw new Error(
      `${where}: not a training checkpoint (no ${KEY} metadata; older checkpoint formats are ` +
        "not read); delete it to start over",
    );
  }
  return JSON.parse(m);
}

/** A checkpoint from its bytes. */
export function decodeCheckpoint(bytes: Uint8Array, where: string): Checkpoint {
  const h = parseHeader(bytes, bytes.length, where);
  const meta = metaOf(h, where);
  const tensors: Weights = new Map();
  for (const [name, e] of h.entries) {
    const data = toFloat32(bytes.subarray(e.begin, e.end), e.dtype, `${where}: tensor ${name}`);
    tensors.set(name, { shape: e.shape, data });
  }
  return { tensors, meta };
}

/** The checkpoint at `path`, or undefined when there is no file. */
export function readCheckpoint(path: string): Checkpoint | undefined {
  try {
    Deno.statSync(path);
  } catch {
    return undefined;
  }
  const r = new SafetensorsReader(path);
  try {
    const meta = metaOf(r.header, path);
    return { tensors: new Map(r.names().map((n) => [n, r.read(n)])), meta };
  } finally {
    r.close();
  }
}

/** Tensor `name` with `size` values, or an error saying the checkpoint is another run's. */
export function tensorOf(
  tensors: ReadonlyMap<string, Tensor>,
  name: string,
  size: number,
  where: string,
): Float32Array {
  const t = tensors.get(name);
  if (!t || t.data.length !== size) {
    throw new Error(
      `${where}: tensor ${name} is missing or of the wrong size — the checkpoint is from ` +
        "another configuration; delete it to start over",
    );
  }
  return t.data;
}
