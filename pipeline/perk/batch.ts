/**
 * Token batches for PERK: the inner batch (one row per "Document {i}:" segment, right
 * padded, prefix and padding masked) and the outer sequence (question prompt + target,
 * only the target scored). Targets are next-token ids, −1 where no loss is taken.
 */

export interface EncodedProblem {
  /** Token ids of each segment, "Document {i}: " prefix first, EOS last. */
  readonly segments: readonly Int32Array[];
  /** Tokens of each segment's prefix (masked out of the inner loss). */
  readonly prefixLengths: readonly number[];
  /** Question prompt ids (no context). */
  readonly prompt: Int32Array;
  /** Target ids (support + answer for BabiLong), EOS last. */
  readonly target: Int32Array;
}

export interface TokenBatch {
  readonly rows: number;
  readonly len: number;
  /** (rows·len) input ids (padding = 0). */
  readonly ids: Int32Array;
  /** (rows·len) next-token targets, −1 = no loss. */
  readonly targets: Int32Array;
  /** Scored positions. */
  readonly count: number;
}

/**
 * Row lengths are padded up to a multiple of this: kernels are specialised per shape, so
 * bucketing keeps the number of distinct shapes (pipeline compiles, ~1 s each here) small
 * across problems. Padding is masked (targets −1; causal attention never looks ahead).
 */
export const LENGTH_BUCKET = 32;
const bucket = (n: number, b: number) => Math.ceil(n / b) * b;

/** The inner batch of a problem's segments (optionally a subset, for K-way accumulation). */
export function innerBatch(
  p: EncodedProblem,
  order?: readonly number[],
  lengthBucket = LENGTH_BUCKET,
): TokenBatch {
  const idx = order ?? p.segments.map((_, i) => i);
  const len = bucket(Math.max(2, ...idx.map((i) => p.segments[i].length)), lengthBucket);
  const rows = idx.length;
  const ids = new Int32Array(rows * len), targets = new Int32Array(rows * len).fill(-1);
  let count = 0;
  idx.forEach((s, r) => {
    const seg = p.segments[s], pre = p.prefixLengths[s];
    ids.set(seg, r * len);
    // position t predicts t+1; the prefix tokens are not predicted
    for (let t = Math.max(0, pre - 1); t + 1 < seg.length; t++) {
      targets[r * len + t] = seg[t + 1];
      count++;
    }
  });
  return { rows, len, ids, targets, count };
}

/** The outer sequence: prompt ⧺ target (right-padded), loss on the target tokens only. */
export function outerBatch(p: EncodedProblem, lengthBucket = 16): TokenBatch {
  const used = p.prompt.length + p.target.length;
  const len = bucket(used, lengthBucket);
  const ids = new Int32Array(len);
  ids.set(p.prompt);
  ids.set(p.target, p.prompt.length);
  const targets = new Int32Array(len).fill(-1);
  for (let t = p.prompt.length - 1; t + 1 < used; t++) targets[t] = ids[t + 1];
  return { rows: 1, len, ids, targets, count: p.target.length };
}
