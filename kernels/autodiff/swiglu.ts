/**
 * SwiGLU y = silu(a)·b (LLaMA/Qwen's MLP gate) as one rule: forward and tangent are one
 * elementwise map each, the backward (both cotangents) one kernel, and the backward's
 * tangent one kernel (../ops/swiglu_kernels.ts) — composed of silu and mul they were two,
 * two, three and three dispatches. Each expression follows the composed ops term for term.
 * Third order is not implemented (as the other fused gradients).
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as ew from "../ops/elementwise.ts";
import * as K from "../ops/swiglu_kernels.ts";
import { apply, apply1, type Rule } from "./tape.ts";

const swigluGradRule: Rule<void> = {
  name: "swiglu_grad",
  forward: ([a, b, g]) => K.swigluGrad(a, b, g),
  jvp: ([a, b, g], [da, db, dg]) =>
    da || db || dg ? K.swigluGradTangent(a, b, g, da, db, dg) : [undefined, undefined],
  vjp: () => {
    throw new Error("swiglu: third-order derivatives are not implemented");
  },
};

const swigluRule: Rule<void> = {
  name: "swiglu",
  forward: ([a, b]) => [ew.mapN(K.SWIGLU_MAP.value, [a, b])],
  jvp: ([a, b], [da, db]) => [
    da && db
      ? ew.mapN(K.SWIGLU_MAP.tangent, [a, b, da, db])
      : da
      ? ew.mapN(K.SWIGLU_MAP.tangentA, [a, b, da])
      : db && ew.mapN(K.SWIGLU_MAP.tangentB, [a, db]),
  ],
  vjp: ([a, b], _, [g]) => apply(swigluGradRule, [a, b, g!], undefined),
};

/** silu(a)·b, elementwise (a and b of one shape). */
export function swiglu(a: Tensor, b: Tensor): Tensor {
  if (a.shape.join() !== b.shape.join()) {
    throw new RangeError(`swiglu: ${a} and ${b} must have one shape`);
  }
  return apply1(swigluRule, [a, b], undefined);
}
