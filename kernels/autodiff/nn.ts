/**
 * Differentiable neural-network ops: embedding gather / scatter-add, masked softmax, norms,
 * rotary embedding, causal self-attention (grouped-query, segment masks), LoRA linear,
 * weighted cross-entropy and dropout. Fused kernels carry their own JVP rules (softmax,
 * attention (attention.ts), RMSNorm (norm.ts), LoRA linear (lora.ts), cross-entropy gradient:
 * the "second-order backward" kernels); LayerNorm is a composition of differentiable ops, so
 * its VJP and tangents come from the parts.
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as ew from "../ops/elementwise.ts";
import * as red from "../ops/reduce.ts";
import * as K from "../ops/nn_kernels.ts";
import { apply, apply1, type Rule } from "./tape.ts";
import { fusedAttention } from "./attention.ts";
import { rmsNormFused } from "./norm.ts";
import {
  add,
  expand,
  matmul,
  mean,
  mul,
  reshape,
  rsqrt,
  scale,
  square,
  sub,
  sum,
  sumAll,
} from "./basic.ts";

export { RowIndex } from "../ops/nn_kernels.ts";

// ------------------------------------------------------------------ gather / scatter-add

const gatherRule: Rule<{ idx: K.RowIndex }> = {
  name: "gather",
  saveInputs: false,
  forward: ([w], { idx }) => [K.gatherRows(w, idx)],
  jvp: (_, [dw], __, { idx }) => [dw && K.gatherRows(dw, idx)],
  vjp: (_, __, [g], { idx }) => [scatterAdd(g!, idx)],
};
const scatterRule: Rule<{ idx: K.RowIndex }> = {
  name: "scatter_add",
  saveInputs: false,
  forward: ([s], { idx }) => [K.scatterAddRows(s, idx)],
  jvp: (_, [ds], __, { idx }) => [ds && K.scatterAddRows(ds, idx)],
  vjp: (_, __, [g], { idx }) => [gather(g!, idx)],
};
/** table (V, C) rows at idx → (N, C): the embedding lookup. */
export const gather = (table: Tensor, idx: K.RowIndex) => apply1(gatherRule, [table], { idx });
/** src (N, C) added into rows idx of a zero (rows, C) tensor (deterministic order). */
export const scatterAdd = (src: Tensor, idx: K.RowIndex) => apply1(scatterRule, [src], { idx });

// ------------------------------------------------------------------ softmax

const softmaxRule: Rule<K.SoftmaxMask> = {
  name: "softmax",
  saveInputs: false,
  saveOutputs: true,
  forward: ([x], m) => [K.softmaxRows(x, m)],
  // ẏ = y ⊙ (ẋ − Σ y ẋ); masked entries have y = 0, so they stay 0.
  jvp: (_, [dx], [y]) => {
    if (!dx) return [undefined];
    const s = red.sum(ew.mul(y, dx), -1, true);
    return [ew.mapN("a * (b - c)", [y, dx, s])];
  },
  vjp: (_, [y], [g]) => [mul(y, sub(g!, sum(mul(g!, y), -1, true)))],
};
/** Softmax over the last axis, with optional attention masks (causal, segments). */
export const softmax = (x: Tensor, mask: K.SoftmaxMask = {}) => apply1(softmaxRule, [x], mask);

// ------------------------------------------------------------------ norms

/** LayerNorm over the last axis: (x − μ)/√(σ² + ε) · w + b. */
export function layerNorm(x: Tensor, w: Tensor, b: Tensor | undefined, eps = 1e-5): Tensor {
  const xc = sub(x, mean(x, -1, true));
  const r = rsqrt(scale(mean(square(xc), -1, true), 1, eps));
  const y = mul(mul(xc, r), w);
  return b ? add(y, b) : y;
}
/** RMSNorm over the last axis: x / √(mean(x²) + ε) · w — fused (norm.ts), one dispatch. */
export function rmsNorm(x: Tensor, w: Tensor, eps = 1e-6): Tensor {
  return rmsNormFused(x, w, eps);
}
/** RMSNorm composed of differentiable ops: the oracle the fused rule is tested against. */
export function rmsNormComposed(x: Tensor, w: Tensor, eps = 1e-6): Tensor {
  const r = rsqrt(scale(mean(square(x), -1, true), 1, eps));
  return mul(mul(x, r), w);
}

// ------------------------------------------------------------------ rotary embedding

const ropeRule: Rule<{ cos: Tensor; sin: Tensor }> = {
  name: "rope",
  saveInputs: false,
  forward: ([x], { cos, sin }) => [K.rope(x, cos, sin)],
  jvp: (_, [dx], __, { cos, sin }) => [dx && K.rope(dx, cos, sin)],
  vjp: (_, __, [g], { cos, sin }) => [apply1(ropeInvRule, [g!], { cos, sin })],
};
const ropeInvRule: Rule<{ cos: Tensor; sin: Tensor }> = {
  name: "rope_t",
  saveInputs: false,
  forward: ([x], { cos, sin }) => [K.rope(x, cos, sin, true)],
  jvp: (_, [dx], __, { cos, sin }) => [dx && K.rope(dx, cos, sin, true)],
  vjp: (_, __, [g], p) => [apply1(ropeRule, [g!], p)],
};
/** Rotary embedding of x (…, T, D) in HF's half-split layout; tables (T, D/2). */
export const rope = (x: Tensor, cos: Tensor, sin: Tensor) => apply1(ropeRule, [x], { cos, sin });

// ------------------------------------------------------------------ attention

export interface AttentionOptions {
  readonly causal?: boolean;
  /** (B, T) i32: tokens attend only within their segment (packed documents). */
  readonly segIds?: Tensor;
  /** Score scale; default 1/√D. */
  readonly scale?: number;
}
/**
 * Scaled dot-product self-attention. q (B, H, T, D), k/v (B, Hkv, S, D) with H a multiple
 * of Hkv (grouped-query heads share k/v). Fused ("flash") kernels: streaming over keys with
 * a per-row log-sum-exp, fused backward and tangent kernels for both (see attention.ts);
 * nothing of size T×S is allocated. → (B, H, T, D).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const D = q.shape.at(-1)!;
  return fusedAttention(q, k, v, {
    causal: !!o.causal,
    segIds: o.segIds,
    scale: o.scale ?? 1 / Math.sqrt(D),
  })[0];
}

/**
 * The composed attention: scores = q·kᵀ·scale → masked softmax → ·v, each a differentiable
 * op. The T×S score matrix is materialised (B·H·T·S floats); kept as the oracle the fused
 * kernels are tested against (and for third-order uses).
 */
export function attentionComposed(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: AttentionOptions = {},
): Tensor {
  const [B, H, _T, D] = q.shape;
  const Hkv = k.shape[1], S = k.shape[2];
  if (H % Hkv) throw new RangeError(`attention: ${H} query heads are not a multiple of ${Hkv}`);
  const grp = H / Hkv;
  const widen = (t: Tensor) =>
    grp === 1 ? t : reshape(expand(reshape(t, [B, Hkv, 1, S, D]), [B, Hkv, grp, S, D]), [
      B,
      H,
      S,
      D,
    ]);
  const scores = matmul(q, widen(k), { transB: true }); // (B, H, T, S)
  const mask = { heads: H, causal: o.causal, segIds: o.segIds };
  const p = softmax(scale(scores, o.scale ?? 1 / Math.sqrt(D)), mask);
  return matmul(p, widen(v)); // (B, H, T, D)
}

// ------------------------------------------------------------------ LoRA linear

// One fused rule (base product, dropout inside the skinny products): lora.ts.
export { loraLinear, type LoraWeights } from "./lora.ts";

// ------------------------------------------------------------------ cross-entropy

interface CeP {
  readonly targets: Tensor;
}
const ceGradRule: Rule<CeP> = {
  name: "cross_entropy_grad",
  forward: ([z, lse, g], { targets }) => [K.crossEntropyGrad(z, targets, lse, g)],
  jvp: ([z, lse, g], [dz, _dl, dg], __, { targets }) => {
    if (!dz && !dg) return [undefined];
    const zd = dz ?? ew.scale(z, 0), gd = dg ?? ew.scale(g, 0);
    return [K.crossEntropyGradTangent(z, targets, lse, g, gd, zd)];
  },
  vjp: () => {
    throw new Error("cross-entropy: third-order derivatives are not implemented");
  },
};
const ceRule: Rule<CeP> = {
  name: "cross_entropy",
  saveOutputs: true,
  forward: ([z], { targets }) => K.crossEntropyRows(z, targets),
  jvp: ([z], [dz], [_nll, lse], { targets }) => {
    if (!dz) return [undefined, undefined];
    // ṅll = Σ p ż − ż_t (fused); the lse output's tangent is Σ p ż.
    return [K.crossEntropyPDot(z, targets, lse, dz, true), K.crossEntropyPDot(z, targets, lse, dz)];
  },
  vjp: ([z], [_nll, lse], [g, gl], { targets }) => {
    if (gl) throw new Error("cross-entropy: the log-sum-exp output is not differentiable");
    return [apply1(ceGradRule, [z, lse, g!], { targets })];
  },
};
/** Per-row NLL (N) of i32 targets (−1 = ignored → 0) from logits (N, V). */
export function crossEntropyRows(z: Tensor, targets: Tensor): Tensor {
  // The log-sum-exp output stays in the caller's scope (the tape may hold it for the VJP).
  return apply(ceRule, [z], { targets })[0];
}
/** Σ_i w_i · NLL_i: the weighted causal-LM loss (normalise outside as the method says). */
export function weightedCrossEntropy(z: Tensor, targets: Tensor, weights: Tensor): Tensor {
  return sumAll(mul(crossEntropyRows(z, targets), weights));
}

// ------------------------------------------------------------------ dropout

const dropoutRule: Rule<{ p: number; seed: number }> = {
  name: "dropout",
  saveInputs: false,
  forward: ([x], { p, seed }) => [K.dropout(x, p, seed)],
  jvp: (_, [dx], __, { p, seed }) => [dx && K.dropout(dx, p, seed)],
  vjp: (_, __, [g], q) => [dropout(g!, q.p, q.seed)],
};
/** Inverted dropout; the mask depends only on (seed, element index): reproducible. */
export const dropout = (x: Tensor, p: number, seed: number) =>
  apply1(dropoutRule, [x], { p, seed });
