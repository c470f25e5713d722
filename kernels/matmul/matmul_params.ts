/**
 * The uniform block of the shape-independent matmul kernels (naive, tiled, split-K reduce):
 * sizes, strides, the K split and the epilogue live here instead of in the WGSL, so one
 * pipeline per variant serves every shape and a new length compiles nothing. (The subgroup
 * and texture families for CPU adapters keep sizes baked in: faster on lavapipe, see
 * matmul_subgroup.ts.)
 */
import type { MatmulShape } from "./matmul.ts";

/** Epilogue C = alpha·acc (+ bias) (+ C_in). */
export interface Epilogue {
  readonly alpha: number;
  readonly bias: boolean;
  readonly accumulate: boolean;
}

/** `flags` bits of the block. */
export const FLAG_BIAS = 1, FLAG_ACCUMULATE = 2;

/**
 * WGSL declaration of the block (`var<uniform> p: MM` at `binding`). strideA/strideB:
 * elements between batches of A and B (strideB = 0: B shared by every batch); C is dense
 * (batch, M, N). K is split into `splits` chunks of `kChunk` (splits = 1: no split).
 */
export function paramsWgsl(binding: number): string {
  return `struct MM {
  m: u32, n: u32, k: u32, batch: u32,
  strideA: u32, strideB: u32, splits: u32, kChunk: u32,
  flags: u32, alpha: f32,
}
@group(0) @binding(${binding}) var<uniform> p: MM;`;
}

/** Pack the block (40 bytes; the arena pads it). */
export function paramsWords(
  s: MatmulShape,
  ep: Epilogue,
  split: { splits: number; kChunk: number } = { splits: 1, kChunk: s.k },
): Uint32Array {
  const u = new Uint32Array(10);
  u.set([
    s.m,
    s.n,
    s.k,
    s.batch,
    s.m * s.k,
    s.batchB ? s.k * s.n : 0,
    split.splits,
    split.kChunk,
    (ep.bias ? FLAG_BIAS : 0) | (ep.accumulate ? FLAG_ACCUMULATE : 0),
  ]);
  new Float32Array(u.buffer)[9] = ep.alpha;
  return u;
}

/** WGSL for the epilogue of one output: `r` is the accumulator, `idx` C's index. */
export function epilogueWgsl(r: string, idx: string, col: string): string {
  return `var e = ${r} * p.alpha;
      if ((p.flags & ${FLAG_BIAS}u) != 0u) { e += BIAS[${col}]; }
      if ((p.flags & ${FLAG_ACCUMULATE}u) != 0u) { e += C[${idx}]; }
      C[${idx}] = e;`;
}
