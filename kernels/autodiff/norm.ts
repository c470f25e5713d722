/**
 * Fused RMSNorm as two rules (kernels in ../ops/norm_kernels.ts), one dispatch per
 * forward, tangent, gradient and gradient tangent:
 *  - rmsNormRule: [x, (w)] → y = x·r·w. Its VJP gives x̄ through rmsNormGradRule, and w̄ =
 *    Σ_rows g·(x·r) from differentiable ops (only when w is trained: pretraining);
 *  - rmsNormGradRule: [x, g, (w)] → x̄. Its JVP is the fused gradient-tangent kernel, so an
 *    HVP (forward-over-reverse) runs the norm's backward with tangents in one dispatch too.
 *    Third order is not implemented (as the cross-entropy gradient).
 * The composed form (nn.ts `rmsNormComposed`) is the oracle the tests compare against.
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as K from "../ops/norm_kernels.ts";
import { apply1, type Rule } from "./tape.ts";
import { mul, sumTo } from "./basic.ts";

interface NormP {
  readonly eps: number;
}

const rmsNormRule: Rule<NormP> = {
  name: "rms_norm",
  // x's cotangent from its other use (the residual stream) is added in the gradient kernel.
  accumulates: [0],
  forward: ([x, w], { eps }) => [K.rmsNormRows(x, w, eps)],
  jvp: ([x, w], [dx, dw], _, { eps }) => [
    dx || dw ? K.rmsNormTangent(x, w, dx, dw, eps) : undefined,
  ],
  vjp: ([x, w], _, [g], p, [nx, nw], [acc]) => [
    nx
      ? apply1(rmsNormGradRule, [x, g!, ...(w ? [w] : []), ...(acc ? [acc] : [])], {
        eps: p.eps,
        hasW: !!w,
        hasAcc: !!acc,
      })
      : undefined,
    ...(w ? [nw ? sumTo(mul(g!, apply1(rmsNormRule, [x], p)), w.shape) : undefined] : []),
  ],
};

interface GradP extends NormP {
  readonly hasW: boolean;
  readonly hasAcc: boolean;
}
/** [x, g, w?, acc?] (or their tangents) by name. */
const gradParts = <T>(xs: readonly T[], p: GradP) => ({
  x: xs[0],
  g: xs[1],
  w: p.hasW ? xs[2] : undefined,
  acc: p.hasAcc ? xs[p.hasW ? 3 : 2] : undefined,
});

const rmsNormGradRule: Rule<GradP> = {
  name: "rms_norm_grad",
  forward: (xs, p) => {
    const { x, g, w, acc } = gradParts(xs, p);
    return [K.rmsNormGrad(x, g, w, acc, p.eps)];
  },
  jvp: (xs, dxs, _, p) => {
    const { x, g, w } = gradParts(xs, p);
    const d = gradParts(dxs, p);
    if (!d.x && !d.g && !d.w) return [d.acc];
    return [K.rmsNormGradTangent(x, g, w, d.x, d.g, d.w, d.acc, p.eps)];
  },
  vjp: () => {
    throw new Error("rmsNorm: third-order derivatives are not implemented");
  },
};

/** RMSNorm over the last axis, fused: x / √(mean(x²) + ε) · w (w of the last axis' length). */
export function rmsNormFused(x: Tensor, w: Tensor | undefined, eps = 1e-6): Tensor {
  const C = x.shape.at(-1);
  if (w && (w.size !== C || w.shape.length !== 1)) {
    throw new RangeError(`rmsNorm: weight ${w} must be 1-D of the last axis of ${x}`);
  }
  return apply1(rmsNormRule, w ? [x, w] : [x], { eps });
}
