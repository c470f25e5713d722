/**
 * Differentiable AdamW, elementwise, in float64 — the plain reference for the inner
 * optimizer (perk-method §2) and for its adjoint (the reverse sweep of the meta-gradient,
 * §4). The WGSL kernels in kernels/optim/ are tested against these functions.
 *
 * Step t (1-based), per element, with learning rate lr (a per-tensor scalar):
 *   p' = p·(1 − lr·wd)
 *   m' = β1·m + (1 − β1)·g
 *   v' = β2·v + (1 − β2)·g²
 *   u  = c1·m' / (c2·√v' + eps),   c1 = 1/(1 − β1^t),  c2 = 1/√(1 − β2^t)
 *   p_next = p' − lr·u
 */

export interface AdamWHyper {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const INNER_ADAMW: AdamWHyper = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01 };

export function biasCorrections(h: AdamWHyper, t: number): { c1: number; c2: number } {
  return { c1: 1 / (1 - h.beta1 ** t), c2: 1 / Math.sqrt(1 - h.beta2 ** t) };
}

/** One AdamW step on one tensor (returns new arrays; inputs untouched). */
export function adamwStepRef(
  p: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  g: ArrayLike<number>,
  lr: number,
  t: number,
  h: AdamWHyper = INNER_ADAMW,
): { p: Float64Array; m: Float64Array; v: Float64Array; u: Float64Array } {
  const { c1, c2 } = biasCorrections(h, t);
  const n = p.length;
  const out = {
    p: new Float64Array(n),
    m: new Float64Array(n),
    v: new Float64Array(n),
    u: new Float64Array(n),
  };
  for (let i = 0; i < n; i++) {
    const mi = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    const vi = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const u = (c1 * mi) / (c2 * Math.sqrt(vi) + h.eps);
    out.m[i] = mi;
    out.v[i] = vi;
    out.u[i] = u;
    out.p[i] = p[i] * (1 - lr * h.weightDecay) - lr * u;
  }
  return out;
}

/**
 * Adjoint of one AdamW step. Given the adjoints of its outputs (pBar of p_next, mBar of m',
 * vBar of v') and the step's inputs, returns the adjoints of its inputs: p, m, v, g and
 * the learning rate (a scalar: summed over the tensor).
 *
 * Where v' = 0 (every gradient so far was exactly 0, e.g. LoRA A while B = 0) ∂u/∂v' is
 * infinite but multiplies ∂v'/∂g = 2(1−β2)g = 0: the limit along the path is 0, so the
 * v' term is dropped there (autograd would give NaN).
 */
export function adamwAdjointRef(
  p: ArrayLike<number>,
  m: ArrayLike<number>,
  v: ArrayLike<number>,
  g: ArrayLike<number>,
  lr: number,
  t: number,
  pBar: ArrayLike<number>,
  mBar: ArrayLike<number>,
  vBar: ArrayLike<number>,
  h: AdamWHyper = INNER_ADAMW,
): { p: Float64Array; m: Float64Array; v: Float64Array; g: Float64Array; lr: number } {
  const { c1, c2 } = biasCorrections(h, t);
  const n = p.length;
  const out = {
    p: new Float64Array(n),
    m: new Float64Array(n),
    v: new Float64Array(n),
    g: new Float64Array(n),
    lr: 0,
  };
  for (let i = 0; i < n; i++) {
    const mi = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    const vi = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const sv = Math.sqrt(vi);
    const den = c2 * sv + h.eps;
    const u = (c1 * mi) / den;
    out.lr += pBar[i] * (-p[i] * h.weightDecay - u);
    out.p[i] = pBar[i] * (1 - lr * h.weightDecay);
    const uBar = -lr * pBar[i];
    const mTot = mBar[i] + (uBar * c1) / den;
    const vTot = vBar[i] + (sv > 0 ? (uBar * (-c1 * mi * c2)) / (den * den * 2 * sv) : 0);
    out.m[i] = h.beta1 * mTot;
    out.v[i] = h.beta2 * vTot;
    out.g[i] = (1 - h.beta1) * mTot + 2 * (1 - h.beta2) * g[i] * vTot;
  }
  return out;
}
