/**
 * In-place accumulation `dst += alpha · src` (same size, f32). Used where gradients are
 * summed into an existing buffer: gradient accumulation over segment groups, and the
 * meta-gradient sweep adding Hessian-vector products to adjoints. (The differentiable
 * `add` op makes a new tensor and records derivatives; this does neither.)
 */
import type { Tensor } from "../runtime/tensor.ts";
import { kernel } from "../runtime/kernel.ts";

const ACCUMULATE = kernel({
  name: "accumulate",
  inputs: { S: "f32" },
  outputs: { D: "f32" },
  uniforms: { n: "u32", alpha: "f32" },
  lanes: "u.n",
  body: "  D[id] += u.alpha * S[id];",
});

/** dst += alpha · src, in place; returns dst. */
export function accumulateInto(dst: Tensor, src: Tensor, alpha = 1): Tensor {
  if (dst.size !== src.size || dst.dtype !== "f32" || src.dtype !== "f32") {
    throw new RangeError(`accumulateInto: ${dst} += ${src} needs two f32 tensors of one size`);
  }
  ACCUMULATE.run(dst.rt, [src, dst], { n: dst.size, alpha }, dst.size);
  return dst;
}
