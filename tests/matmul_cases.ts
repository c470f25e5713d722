/**
 * What the matmul tests share (tests/matmul_test.ts, tests/matmul_tiled_test.ts): a case's
 * shape and its random host operands.
 */
import { randn } from "./testing.ts";

/** C (batch, m, n) = op(A)·op(B) (+ bias, + accumulator); B shared over the batch or not. */
export interface MatmulCase {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  sharedB?: boolean;
  splitK?: number;
}

/**
 * A case's host operands from seeds seed … seed + 3: A, B (batch bBatch), a bias of n and an
 * accumulator of the output's size.
 */
export function caseData(c: MatmulCase, seed: number) {
  const bBatch = c.sharedB ? 1 : c.batch;
  return {
    bBatch,
    aData: randn(c.batch * c.m * c.k, seed),
    bData: randn(bBatch * c.n * c.k, seed + 1),
    bias: randn(c.n, seed + 2),
    acc: randn(c.batch * c.m * c.n, seed + 3),
  };
}
