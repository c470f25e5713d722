/**
 * FT-ICR training checkpoints: one safetensors file holding the trained tensors, AdamW's
 * moments and the best-so-far tensors, with the loop state and the identity of the run
 * (options, parameter layout, problem ids) in its metadata. Written atomically
 * (temp + rename), so an interrupted write leaves the previous checkpoint intact; a
 * checkpoint from another configuration is refused with a message, never half-loaded.
 */
import { readSafetensors, SafetensorsReader, writeSafetensors } from "../../model/safetensors.ts";

/** The loop's own state, JSON in the checkpoint's metadata. */
export interface LoopState {
  step: number;
  bestValLoss: number | null; // null: not evaluated yet (JSON has no Infinity)
  bestStep: number;
  sinceBest: number;
  stopped: boolean;
  history: TrainRecord[];
}

export interface TrainRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
  readonly problems: readonly string[];
  readonly valLoss?: number;
}

export interface CheckpointData {
  readonly loop: LoopState;
  readonly params: Float32Array[];
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  readonly best: Float32Array[];
}

const META_LOOP = "ft_icr_loop", META_ID = "ft_icr_identity";

export function saveCheckpoint(
  path: string,
  identity: string,
  shapes: readonly (readonly number[])[],
  d: CheckpointData,
): void {
  const entries: [string, { shape: readonly number[]; data: Float32Array }][] = [];
  for (const [kind, list] of [["p", d.params], ["m", d.m], ["v", d.v], ["best", d.best]] as const) {
    list.forEach((data, i) => entries.push([`${kind}.${i}`, { shape: shapes[i], data }]));
  }
  writeSafetensors(path, entries, {
    metadata: { [META_LOOP]: JSON.stringify(d.loop), [META_ID]: identity },
  });
}

/** The checkpoint at `path`, or undefined when there is none; errors name the fix. */
export function loadCheckpoint(
  path: string,
  identity: string,
  shapes: readonly (readonly number[])[],
): CheckpointData | undefined {
  try {
    Deno.statSync(path);
  } catch {
    return undefined;
  }
  const r = new SafetensorsReader(path);
  const meta = r.header.metadata;
  r.close();
  if (!meta[META_LOOP]) {
    throw new Error(`${path}: not an FT-ICR checkpoint (no ${META_LOOP} metadata); delete it`);
  }
  if (meta[META_ID] !== identity) {
    throw new Error(
      `${path}: this checkpoint was made with other options, parameters or problems; ` +
        "delete it to start over",
    );
  }
  const ts = readSafetensors(path);
  const get = (kind: string) =>
    shapes.map((shape, i) => {
      const t = ts.get(`${kind}.${i}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (!t || t.data.length !== n) {
        throw new Error(`${path}: tensor ${kind}.${i} is missing or of the wrong size; delete it`);
      }
      return t.data;
    });
  return {
    loop: JSON.parse(meta[META_LOOP]) as LoopState,
    params: get("p"),
    m: get("m"),
    v: get("v"),
    best: get("best"),
  };
}
