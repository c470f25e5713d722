/**
 * safetensors files (https://github.com/huggingface/safetensors): 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
 * then the raw little-endian data. We read F32, F16, BF16 (and F64) into Float32Arrays,
 * tensor by tensor through a file handle (a multi-GB shard is never held twice), validate the
 * whole header before reading anything, and write F32/F16/BF16 files atomically.
 */
import { writeFileAtomic } from "./atomic.ts";
import { ModelError } from "./errors.ts";
import { numel, type Tensor } from "./weights.ts";

export type DType = "F32" | "F16" | "BF16" | "F64";
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
const READABLE = ["F32", "F16", "BF16", "F64"];
/** Larger headers are not real safetensors files (the format caps the header at 100 MB). */
const MAX_HEADER = 100_000_000;

export interface TensorEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly entries: Map<string, TensorEntry>;
  readonly metadata: Record<string, string>;
}

/** Parse and validate a header (`head` = the file's first bytes, ≥ 8 + N of them). */
export function parseHeader(head: Uint8Array, fileSize: number, where: string): SafetensorsHeader {
  const bad = (msg: string) =>
    new ModelError(`${where}: ${msg} (truncated or not a safetensors file?)`);
  if (fileSize < 8 || head.length < 8) throw bad(`${fileSize} bytes is too short for a header`);
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > fileSize) {
    throw bad(`header length ${n} does not fit in the file's ${fileSize} bytes`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    throw bad("header is not an object");
  }
  const dataStart = 8 + n, dataLen = fileSize - dataStart;
  const entries = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json)) {
    if (name === "__metadata__") {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const size = DTYPE_BYTES[e?.dtype as string];
    if (!size) throw bad(`tensor "${name}" has unknown dtype ${JSON.stringify(e?.dtype)}`);
    const shape = e.shape, offs = e.data_offsets;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw bad(`tensor "${name}" has a bad shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 || !offs.every(Number.isInteger) ||
      offs[0] < 0 || offs[1] < offs[0]
    ) throw bad(`tensor "${name}" has bad data_offsets ${JSON.stringify(offs)}`);
    if (offs[1] - offs[0] !== numel(shape) * size) {
      throw bad(
        `tensor "${name}" [${shape}] ${e.dtype} needs ${numel(shape) * size} bytes, ` +
          `data_offsets give ${offs[1] - offs[0]}`,
      );
    }
    if (offs[1] > dataLen) {
      throw bad(`tensor "${name}" ends at data byte ${offs[1]} but the file has ${dataLen}`);
    }
    entries.set(name, {
      name,
      dtype: e.dtype as string,
      shape,
      begin: dataStart + offs[0],
      end: dataStart + offs[1],
    });
  }
  return { entries, metadata };
}

function readFully(f: Deno.FsFile, buf: Uint8Array, where: string): void {
  let got = 0;
  while (got < buf.length) {
    const r = f.readSync(buf.subarray(got));
    if (r === null || r === 0) throw new ModelError(`${where}: file ended early (truncated?)`);
    got += r;
  }
}

/** Raw little-endian bytes of one dtype → float32. */
export function toFloat32(bytes: Uint8Array, dtype: string, where: string): Float32Array {
  // Copy into a fresh (aligned) buffer: tensor offsets in a file need not be aligned.
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F64":
      return Float32Array.from(new Float64Array(buf));
    case "F16":
      return Float32Array.from(new Float16Array(buf));
    case "BF16": {
      const src = new Uint16Array(buf), bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
  }
  throw new ModelError(`${where}: dtype ${dtype} is not supported; use one of ${READABLE}`);
}

/** An open safetensors file: header validated, tensors read on demand. */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  private readonly file: Deno.FsFile;

  constructor(readonly path: string) {
    try {
      this.file = Deno.openSync(path, { read: true });
    } catch (e) {
      throw new ModelError(`${path}: cannot open (${(e as Error).message})`);
    }
    try {
      const size = this.file.statSync().size;
      const first = new Uint8Array(Math.min(size, 8));
      readFully(this.file, first, path);
      let head = first;
      if (size >= 8) {
        const n = Number(new DataView(first.buffer).getBigUint64(0, true));
        if (n <= MAX_HEADER && 8 + n <= size) {
          head = new Uint8Array(8 + n);
          head.set(first);
          readFully(this.file, head.subarray(8), path);
        }
      }
      this.header = parseHeader(head, size, path);
    } catch (e) {
      this.file.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.header.entries.keys()];
  }

  read(name: string): Tensor {
    const e = this.header.entries.get(name);
    if (!e) throw new ModelError(`${this.path}: no tensor "${name}"`);
    const bytes = new Uint8Array(e.end - e.begin);
    this.file.seekSync(e.begin, Deno.SeekMode.Start);
    readFully(this.file, bytes, this.path);
    return { shape: e.shape, data: toFloat32(bytes, e.dtype, `${this.path}: tensor "${name}"`) };
  }

  close(): void {
    this.file.close();
  }
}

/** Every tensor of one file (as float32). */
export function readSafetensors(path: string): Map<string, Tensor> {
  const r = new SafetensorsReader(path);
  try {
    return new Map(r.names().map((n) => [n, r.read(n)]));
  } finally {
    r.close();
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Tensors of a model directory: `model.safetensors`, or the shards listed by
 * `model.safetensors.index.json` (every tensor of its weight_map must be in its shard).
 * `keep(name)` skips tensors the caller will ignore (e.g. causal-mask buffers).
 */
export function readSafetensorsDir(
  dir: string,
  keep: (name: string) => boolean = () => true,
): Map<string, Tensor> {
  const index = `${dir}/model.safetensors.index.json`;
  const single = `${dir}/model.safetensors`;
  if (exists(index)) {
    let map: Record<string, string>;
    try {
      map = JSON.parse(Deno.readTextFileSync(index)).weight_map;
    } catch (e) {
      throw new ModelError(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (!map || typeof map !== "object") {
      throw new ModelError(`${index}: needs a "weight_map" object {tensor: shard file}`);
    }
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(map)) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
        throw new ModelError(`${index}: tensor "${name}" maps to a bad shard name ${shard}`);
      }
      if (!byShard.has(shard)) byShard.set(shard, []);
      byShard.get(shard)!.push(name);
    }
    const out = new Map<string, Tensor>();
    for (const [shard, names] of byShard) {
      const r = new SafetensorsReader(`${dir}/${shard}`);
      try {
        for (const n of names) {
          if (!r.header.entries.has(n)) {
            throw new ModelError(`${index}: tensor "${n}" is not in shard ${dir}/${shard}`);
          }
          if (keep(n)) out.set(n, r.read(n));
        }
      } finally {
        r.close();
      }
    }
    return out;
  }
  if (exists(single)) {
    const r = new SafetensorsReader(single);
    try {
      return new Map(r.names().filter(keep).map((n) => [n, r.read(n)]));
    } finally {
      r.close();
    }
  }
  throw new ModelError(
    `${dir}: no model.safetensors or model.safetensors.index.json (PyTorch .bin checkpoints ` +
      `are not read; convert them to safetensors)`,
  );
}

function encodeData(t: Tensor, dtype: DType): Uint8Array {
  switch (dtype) {
    case "F32":
      return new Uint8Array(t.data.slice().buffer);
    case "F64":
      return new Uint8Array(Float64Array.from(t.data).buffer);
    case "F16":
      return new Uint8Array(Float16Array.from(t.data).buffer);
    case "BF16": {
      const bits = new Uint32Array(t.data.slice().buffer), out = new Uint16Array(bits.length);
      for (let i = 0; i < bits.length; i++) {
        const b = bits[i];
        // Round to nearest even; NaN stays a (quiet) NaN.
        out[i] = (b & 0x7fffffff) > 0x7f800000
          ? (b >>> 16) | 0x40
          : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
  }
}

/** A safetensors file's bytes: tensors in the given order, header padded to 8 bytes. */
export function encodeSafetensors(
  tensors: Iterable<[string, Tensor]>,
  { dtype = "F32", metadata }: { dtype?: DType; metadata?: Record<string, string> } = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (t.data.length !== numel(t.shape)) {
      throw new ModelError(`tensor "${name}": ${t.data.length} values for shape [${t.shape}]`);
    }
    const bytes = encodeData(t, dtype);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Write a safetensors file atomically (temp file + rename). */
export function writeSafetensors(
  path: string,
  tensors: Iterable<[string, Tensor]>,
  opts: { dtype?: DType; metadata?: Record<string, string> } = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, opts));
}
