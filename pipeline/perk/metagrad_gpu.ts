/**
 * GPU backend for the meta-gradient sweep (metagrad.ts): AdamW step and adjoint kernels
 * (kernels/optim/adamw.ts) with the learned learning rates in one GPU tensor `lr`
 * (steps × tensors, row-major) and their adjoints accumulated into `lrBar` of the same shape.
 *
 * Parameter lists are packed sets (kernels/optim/packed.ts: all J tensors in one buffer, each
 * a view), so a step, an adjoint (plus its learning-rate sums) and an accumulation are one
 * dispatch each over all tensors. Results are views of new packed buffers. A list that is not
 * packed (tests hand in separate tensors) is copied into one first.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { adamwAdjointPacked, adamwStepPacked } from "../../kernels/optim/adamw.ts";
import { accumulateInto } from "../../kernels/optim/accumulate.ts";
import {
  layoutOf,
  type PackedLayout,
  packedZeros,
  toPacked,
  unpack,
} from "../../kernels/optim/packed.ts";
import type { SweepBackend } from "./metagrad.ts";
import { type AdamWHyper, INNER_ADAMW } from "../../kernels/optim/adamw_math.ts";

export function gpuBackend(
  lr: Tensor,
  lrBar: Tensor | undefined,
  tensorsPerStep: number,
  h: AdamWHyper = INNER_ADAMW,
): SweepBackend<Tensor, Tensor[]> {
  const layout = (xs: readonly Tensor[]): PackedLayout => {
    if (xs.length !== tensorsPerStep) {
      throw new RangeError(`gpuBackend: ${xs.length} tensors; the rates are for ${tensorsPerStep}`);
    }
    return layoutOf(xs);
  };
  /** Packed buffers of lists (new references), run `fn`, release them. */
  const withPacked = <R>(L: PackedLayout, lists: readonly Tensor[][], fn: (f: Tensor[]) => R) => {
    const flat = lists.map((x) => toPacked(x, L));
    try {
      return fn(flat);
    } finally {
      flat.forEach((f) => f.dispose());
    }
  };
  return {
    zerosLike: (xs) => {
      const L = layout(xs);
      return unpack(packedZeros(xs[0].rt, L), L);
    },
    step(p, m, v, g, n) {
      const L = layout(p);
      const o = withPacked(
        L,
        [p, m, v, g],
        ([P, M, V, G]) => adamwStepPacked(P, M, V, G, lr, n * tensorsPerStep, L, n + 1, h),
      );
      return { p: unpack(o.p, L), m: unpack(o.m, L), v: unpack(o.v, L) };
    },
    adjoint(p, m, v, g, n, pBar, mBar, vBar) {
      if (!lrBar) throw new Error("gpuBackend: an adjoint needs lrBar");
      const L = layout(p);
      const o = withPacked(
        L,
        [p, m, v, g, pBar, mBar, vBar],
        ([P, M, V, G, PB, MB, VB]) =>
          adamwAdjointPacked(P, M, V, G, lr, n * tensorsPerStep, L, n + 1, h, PB, MB, VB, lrBar),
      );
      return { p: unpack(o.p, L), m: unpack(o.m, L), v: unpack(o.v, L), g: unpack(o.g, L) };
    },
    // The sweep releases `a` right after: accumulate into its buffer instead of allocating.
    add(a, b) {
      const L = layout(a);
      const sum = toPacked(a, L);
      withPacked(L, [b], ([B]) => accumulateInto(sum, B));
      return unpack(sum, L);
    },
    addPhi(a, b) {
      if (!a) return b;
      a.forEach((x, i) => accumulateInto(x, b[i]));
      b.forEach((x) => x.dispose());
      return a;
    },
    release: (xs) => xs.forEach((x) => x.dispose()),
  };
}
