/**
 * GPU backend for the meta-gradient sweep (metagrad.ts): AdamW step and adjoint kernels
 * (kernels/optim/adamw.ts) with the learned learning rates in one GPU tensor `lr`
 * (steps × tensors, row-major) and their adjoints accumulated into `lrBar` of the same shape.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { adamwAdjoint, adamwStep } from "../../kernels/optim/adamw.ts";
import { accumulateInto } from "../../kernels/optim/accumulate.ts";
import type { SweepBackend } from "./metagrad.ts";
import { type AdamWHyper, INNER_ADAMW } from "../../kernels/optim/adamw_math.ts";

export function gpuBackend(
  lr: Tensor,
  lrBar: Tensor | undefined,
  tensorsPerStep: number,
  h: AdamWHyper = INNER_ADAMW,
): SweepBackend<Tensor, Tensor[]> {
  const idx = (n: number, j: number) => n * tensorsPerStep + j;
  return {
    zerosLike: (x) => x.rt.zeros(x.shape),
    step: (p, m, v, g, n, j) => adamwStep(p, m, v, g, lr, idx(n, j), n + 1, h),
    adjoint(p, m, v, g, n, j, pBar, mBar, vBar) {
      if (!lrBar) throw new Error("gpuBackend: an adjoint needs lrBar");
      return adamwAdjoint(p, m, v, g, lr, idx(n, j), n + 1, h, pBar, mBar, vBar, lrBar);
    },
    // The sweep releases `a` right after: accumulate in place instead of allocating.
    add: (a, b) => accumulateInto(a.retain(), b),
    addPhi(a, b) {
      if (!a) return b;
      a.forEach((x, i) => accumulateInto(x, b[i]));
      b.forEach((x) => x.dispose());
      return a;
    },
    release: (x) => x.dispose(),
  };
}
