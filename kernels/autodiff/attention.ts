/**
 * Fused attention as two rules (kernels in ../ops/attention/):
 *  - attentionRule: [q, k, v] → [O, L] (L = per-row log-sum-exp, saved for the backward;
 *    its tangent is c_i = Σ_j P_ij Ṡ_ij). JVP = the forward-tangent kernel.
 *  - attentionBackwardRule: [q, k, v, O, L, gO, (gL)] → [gQ, gK, gV]. Its JVP is the
 *    backward-tangent kernels, so forward-over-reverse HVPs never build a T×S matrix; its
 *    VJP (third order) is not supported.
 * attentionRule's VJP applies attentionBackwardRule with the saved O and L, which carry their
 * forward tangents during an HVP, so the backward's JVP gets Ȯ and L̇ without recomputing.
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as AK from "../ops/attention/mod.ts";
import { apply, type Rule } from "./tape.ts";

export type FusedAttentionParams = AK.AttnMask;

const backwardRule: Rule<AK.AttnMask> = {
  name: "attention_backward",
  forward: ([q, k, v, O, L, gO, gL], m) => AK.attentionBackward(q, k, v, O, L, gO, gL, m),
  jvp: ([q, k, v, O, L, gO, gL], [dq, dk, dv, dO, dL, dgO, dgL], _, m) =>
    AK.attentionBackwardTangent(q, k, v, O, L, gO, gL, { dq, dk, dv, dO, dL, dgO, dgL }, m) ??
      [undefined, undefined, undefined],
  vjp: () => {
    throw new Error(
      "attention: third-order derivatives (the VJP of the fused backward) are not supported; " +
        "use nn.attentionComposed if you need them",
    );
  },
};

const forwardRule: Rule<AK.AttnMask> = {
  name: "attention",
  saveOutputs: true,
  forward: ([q, k, v], m) => AK.attentionForward(q, k, v, m),
  jvp: ([q, k, v], [dq, dk, dv], [O, L], m) =>
    dq || dk || dv ? AK.attentionForwardTangent(q, k, v, O, L, { dq, dk, dv }, m) : [
      undefined,
      undefined,
    ],
  vjp: ([q, k, v], [O, L], [gO, gL], m) => {
    // A cotangent on L alone (gO zero) still flows: gO = 0 makes Δ_i = −gL_i.
    const g = gO ?? q.rt.zeros(O.shape);
    return apply(backwardRule, gL ? [q, k, v, O, L, g, gL] : [q, k, v, O, L, g], m);
  },
};

/**
 * Fused attention: [O (B, H, T, D), L (B, H, T)] for q (B, H, T, D), k/v (B, Hkv, S, D).
 * Differentiable to second order (forward-over-reverse), never materialising T×S.
 */
export function fusedAttention(q: Tensor, k: Tensor, v: Tensor, m: AK.AttnMask): [Tensor, Tensor] {
  const [O, L] = apply(forwardRule, [q, k, v], m);
  return [O, L];
}
