/**
 * How attention runs in one GPU forward call, decided on the host before any GPU work: the
 * call's inputs checked, its positions, its left padding, which of the KV-cache modes it uses
 * (where its keys come from) and the segment ids or additive mask that say what each query
 * may see. `attentionPlan` returns a plain data object; `block` (gpu_block.ts) applies it
 * layer by layer. The KV cache the plan reads and fills lives here too.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";

/**
 * Keys and values of every layer so far, (B, Hkv, ·, hd), owned by the cache. Without a
 * capacity each forward appends by concatenation (the key length grows, so every step has
 * new shapes — new matmul pipelines on the first run). With a capacity the tensors are
 * allocated once, filled in place, and attention always spans all `capacity` slots with the
 * unfilled ones masked: shapes stay fixed from step to step (generation). A capacity cache
 * is for inference: what is written into it is not differentiated.
 */
export class GpuKvCache {
  length = 0;
  readonly k: (Tensor | undefined)[];
  readonly v: (Tensor | undefined)[];
  /** Left padding of each row, fixed by the first forward that fills the cache. */
  leftPad: Int32Array | undefined;
  constructor(
    readonly config: ModelConfig,
    readonly batch: number,
    readonly capacity?: number,
  ) {
    if (capacity !== undefined && !(Number.isInteger(capacity) && capacity > 0)) {
      throw new ModelError(`KV cache: capacity must be a positive integer, got ${capacity}`);
    }
    this.k = new Array(config.layers).fill(undefined);
    this.v = new Array(config.layers).fill(undefined);
  }
  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(undefined);
    this.v.fill(undefined);
    this.length = 0;
  }
}

/** The forward options that decide how attention runs (gpu_model.ts GpuForwardOptions). */
export interface AttentionOptions {
  /** Rows B of the (B, T) batch (default 1; ids hold B·T tokens row by row). */
  readonly batch?: number;
  /** Explicit positions (B·T). Default: offset (or the cache length) + t − leftPad[b]. */
  readonly positions?: Int32Array;
  /** First position when positions are implicit (default 0, or the cache's length). */
  readonly offset?: number;
  /** Pad tokens at the start of each row (B): masked as keys, positions start after them. */
  readonly leftPad?: ArrayLike<number>;
  /**
   * (B·T) segment ids: tokens attend only within their segment (packed documents), and
   * implicit positions restart at each segment's first token. Not with a cache.
   */
  readonly segIds?: Int32Array;
  /** Attend to, and append to, this cache. */
  readonly kvCache?: GpuKvCache;
}

/**
 * Where a layer's keys and values come from:
 *  - "own": this call's (no cache, or a fixed-capacity cache's first fill, which also writes
 *    them into the cache);
 *  - "grown": a growing cache's previous ones concatenated with this call's (the result
 *    replaces them in the cache);
 *  - "prefix": a fixed-capacity cache's filled slots [0, p0 + T), once this call's are written;
 *  - "cache": all of a fixed-capacity cache's slots (the unfilled ones masked), likewise.
 */
export type KeysFrom = "own" | "grown" | "prefix" | "cache";

/** An additive mask on the (B, H, T, S) scores: 0 where a query may look, −1e9 elsewhere. */
export interface ScoreMask {
  /** (B, 1, T, S) for a fixed-capacity cache; (B, 1, 1, S) masking only pad keys otherwise. */
  readonly data: Float32Array;
  readonly shape: readonly number[];
  /** Whether the softmax still applies its causal rule (the mask only covers pad keys). */
  readonly causal: boolean;
}

/** How attention runs in one call; host data only. */
export interface AttentionPlan {
  readonly B: number;
  readonly T: number;
  /** B·T tokens. */
  readonly N: number;
  readonly cache: GpuKvCache | undefined;
  /** Tokens already in the cache (0 without one): the first slot this call fills. */
  readonly p0: number;
  /**
   * Each row's left padding as this call sees it (given, or the cache's), also what a cache
   * keeps from its first fill; undefined when neither gives any.
   */
  readonly leftPad: Int32Array | undefined;
  /** (B·T) positions, checked against the model's limit. */
  readonly pos: Int32Array;
  readonly keysFrom: KeysFrom;
  /** Key slots attended to. */
  readonly S: number;
  /** (B, T) segment ids for attention: the caller's, or pad (0) / real (1) on a first fill. */
  readonly segIds: Int32Array | undefined;
  /** Set where the fused kernel's causal rule and segment ids cannot express the mask. */
  readonly mask: ScoreMask | undefined;
}

const MASKED = -1e9;

/** (B·T) segment ids of left-padded rows: 0 on each row's `pad[b]` pad tokens, 1 after. */
function padSegments(pad: ArrayLike<number>, T: number): Int32Array {
  const seg = new Int32Array(pad.length * T).fill(1);
  for (let b = 0; b < pad.length; b++) seg.fill(0, b * T, b * T + pad[b]);
  return seg;
}

/** Implicit or explicit positions (B·T), checked against the model's limit. */
function positions(
  maxP: number,
  B: number,
  T: number,
  p0: number,
  o: AttentionOptions,
  pad?: Int32Array,
): Int32Array {
  const N = B * T;
  let pos: Int32Array;
  if (o.positions) {
    if (o.positions.length !== N) {
      throw new ModelError(`forward: positions has ${o.positions.length} entries; need ${N}`);
    }
    pos = o.positions;
  } else {
    pos = new Int32Array(N);
    for (let b = 0; b < B; b++) {
      let start = 0;
      for (let t = 0; t < T; t++) {
        const i = b * T + t;
        if (o.segIds && t > 0 && o.segIds[i] !== o.segIds[i - 1]) start = t;
        pos[i] = Math.max(0, p0 + t - start - (pad ? pad[b] : 0));
      }
    }
  }
  for (const p of pos) {
    if (!(p >= 0 && p < maxP)) {
      throw new ModelError(
        `forward: position ${p} is outside the model's ${maxP} positions; shorten the input`,
      );
    }
  }
  return pos;
}

/**
 * Check one call's inputs (ids: B·T row by row, host or an i32 GPU tensor) and decide how its
 * attention runs. Throws a ModelError naming the problem; changes nothing (the caller records
 * a first fill's `leftPad` in the cache).
 */
export function attentionPlan(
  c: ModelConfig,
  ids: Int32Array | Tensor,
  o: AttentionOptions,
): AttentionPlan {
  const B = o.batch ?? 1, N = ids instanceof Int32Array ? ids.length : ids.size;
  if (!Number.isInteger(B) || B <= 0 || N % B || N === 0) {
    throw new ModelError(`forward: ${N} ids do not split into ${B} non-empty rows`);
  }
  const T = N / B;
  if (ids instanceof Int32Array) {
    for (const id of ids) {
      if (!(id >= 0 && id < c.vocab)) {
        throw new ModelError(`forward: token id ${id} is outside the vocabulary (${c.vocab})`);
      }
    }
  } else if (ids.dtype !== "i32") {
    throw new ModelError(`forward: ids ${ids} must be i32`);
  }
  const cache = o.kvCache;
  if (cache && cache.batch !== B) {
    throw new ModelError(`forward: the KV cache holds ${cache.batch} rows; got ${B}`);
  }
  if (cache && o.segIds) throw new ModelError("forward: segIds cannot be used with a KV cache");
  if (o.segIds && o.segIds.length !== N) {
    throw new ModelError(`forward: segIds has ${o.segIds.length} entries; need ${N}`);
  }
  const p0 = cache?.length ?? 0;
  let leftPad = cache?.leftPad;
  if (o.leftPad) {
    const lp = Int32Array.from(o.leftPad);
    if (lp.length !== B || lp.some((p) => p < 0 || p >= p0 + T)) {
      throw new ModelError(`forward: leftPad needs ${B} counts, each < the row length`);
    }
    const fixed = cache && p0 > 0 ? leftPad ?? new Int32Array(B) : undefined;
    if (fixed?.some((p, i) => p !== lp[i])) {
      throw new ModelError("forward: leftPad differs from the cache's (fixed at its first use)");
    }
    leftPad = lp;
  }
  // The padding that matters: rows with at least one pad token somewhere in the batch.
  const pad = leftPad?.some((p) => p > 0) ? leftPad : undefined;
  const pos = positions(c.maxPositions, B, T, o.offset ?? p0, o, pad);
  const cap = cache?.capacity;
  if (cap !== undefined && p0 + T > cap) {
    throw new ModelError(`forward: ${p0 + T} tokens overflow the KV cache's ${cap} slots`);
  }

  // How attention sees its keys. The fused kernel never builds the (B, H, T, S) scores, so
  // it runs wherever its causal rule (query t sees keys j ≤ t + S − T) and segment ids
  // express the mask:
  //  - a first fill (p0 = 0) attends to its own T keys; left padding becomes segment 0
  //    (real tokens are segment 1), so no real query sees a pad key;
  //  - a later unpadded chunk (T > 1) of a fixed-capacity cache attends to slots [0, p0 + T),
  //    copied out of the cache (the unfilled slots are never read);
  //  - a growing cache's later unpadded call attends to the concatenated keys.
  // The rest use composed attention with an additive mask: padded rows after the first fill,
  // a capacity cache's one-token decode steps (small (B, H, 1, S) scores, and fixed shapes:
  // one set of pipelines for the whole generation), and left padding with caller segIds.
  const firstFill = p0 === 0;
  const useMask = firstFill ? !!pad && !!o.segIds : !!pad || (cap !== undefined && T === 1);
  const keysFrom: KeysFrom = !cache
    ? "own"
    : cap === undefined
    ? "grown"
    : firstFill
    ? "own"
    : useMask
    ? "cache"
    : "prefix";
  const segIds = o.segIds ?? (pad && firstFill ? padSegments(pad, T) : undefined);
  const S = keysFrom === "cache" && cap !== undefined ? cap : p0 + T;
  let mask: ScoreMask | undefined;
  if (useMask && cap !== undefined) {
    // Fixed-size cache: query t (slot p0 + t) sees slots pad_b ≤ s ≤ p0 + t.
    const m = new Float32Array(B * T * S).fill(MASKED);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const at = (b * T + t) * S;
        m.fill(0, at + (pad ? pad[b] : 0), at + p0 + t + 1);
      }
    }
    mask = { data: m, shape: [B, 1, T, S], causal: false };
  } else if (useMask) {
    // A growing cache or none: only padded rows get here; their pad keys are masked.
    const m = new Float32Array(B * S);
    for (let b = 0; b < B; b++) m.fill(MASKED, b * S, b * S + (pad ? pad[b] : 0));
    mask = { data: m, shape: [B, 1, 1, S], causal: true };
  }
  return { B, T, N, cache, p0, leftPad, pos, keysFrom, S, segIds, mask };
}
