/**
 * The token-weighting model (CaMeLS-style, perk-method §2): w = softplus_β3(W2·gelu(W1·h + b1)
 * + b2) on a final-norm hidden state h. W2 starts at zero, so every weight starts at ln2/3 ≈
 * 0.231. Which hidden state (`WeightsFrom`): the paper's — the adapted model's, not detached, so
 * the weights depend on the LoRA too — or the frozen base's, computed once per context, as
 * CaMeLS reads its tokens with a model of its own (pipeline/perk/README.md: on the tiny base the
 * adapted form collapses within a few hundred outer steps; the base form learns stably).
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { gelu, matmul, reshape, softplus } from "../../kernels/autodiff/basic.ts";

export const WEIGHTING_HIDDEN = 128;

/** The hidden state the weighting model reads: the adapted model's (paper) or the base's. */
export type WeightsFrom = "adapted" | "base";
export const WEIGHTS_FROM: readonly WeightsFrom[] = ["adapted", "base"];
export const WEIGHTING_BETA = 3;

/** φ = [W1 (C, 128), b1 (128), W2 (128, 1), b2 (1)], as host arrays (the meta-parameters). */
export function initWeighting(dim: number, seed: number): Float32Array[] {
  // W1 like nn.Linear's default init (uniform ±1/√C); W2 and b2 zero (weights start equal).
  let a = seed >>> 0;
  const u = () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
  const bound = 1 / Math.sqrt(dim);
  const W1 = Float32Array.from({ length: dim * WEIGHTING_HIDDEN }, () => (2 * u() - 1) * bound);
  const b1 = Float32Array.from({ length: WEIGHTING_HIDDEN }, () => (2 * u() - 1) * bound);
  return [W1, b1, new Float32Array(WEIGHTING_HIDDEN), new Float32Array(1)];
}

export const weightingShapes = (dim: number): number[][] => [
  [dim, WEIGHTING_HIDDEN],
  [WEIGHTING_HIDDEN],
  [WEIGHTING_HIDDEN, 1],
  [1],
];

/** Token weights (N) from hidden states (N, C). */
export function tokenWeights(hidden: Tensor, phi: readonly Tensor[]): Tensor {
  const [W1, b1, W2, b2] = phi;
  const z = matmul(gelu(matmul(hidden, W1, { bias: b1 })), W2, { bias: b2 }); // (N, 1)
  return reshape(softplus(z, WEIGHTING_BETA), [hidden.shape[0]]);
}
