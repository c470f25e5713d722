/**
 * AdamW on the GPU for FT-ICR's trained tensors (kernels/optim/adamw.ts, one dispatch per
 * tensor) with global-norm gradient clipping computed on the GPU, so a step reads back only
 * the loss and the norm. The parameters never leave the GPU between steps: a full
 * fine-tune of a 0.5B model would otherwise move 2 GB each way per step.
 */
import type { Runtime } from "../../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../../kernels/runtime/tensor.ts";
import * as ew from "../../../kernels/ops/elementwise.ts";
import * as red from "../../../kernels/ops/reduce.ts";
import { adamwStep } from "../../../kernels/optim/adamw.ts";
import type { AdamWHyper } from "../../../kernels/optim/adamw_math.ts";

export interface AdamWOptions {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Max global gradient norm (≤ 0: no clipping). */
  readonly clip: number;
}

/** PERK's outer-loop AdamW settings (perk-method §3). */
export const FT_ADAMW: AdamWOptions = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  clip: 1.0,
};

/** Parameters and moments on the GPU, owned by this object. */
export class GpuAdamW {
  p: Tensor[];
  m: Tensor[];
  v: Tensor[];
  readonly #lr: Tensor;
  readonly #hyper: AdamWHyper[];

  constructor(
    readonly rt: Runtime,
    shapes: readonly (readonly number[])[],
    init: { p: readonly Float32Array[]; m?: readonly Float32Array[]; v?: readonly Float32Array[] },
    decay: readonly boolean[],
    readonly o: AdamWOptions = FT_ADAMW,
  ) {
    const up = (xs: readonly Float32Array[] | undefined) =>
      shapes.map((s, i) => rt.keep(xs ? rt.tensor(xs[i], s) : rt.zeros(s)));
    this.p = up(init.p);
    this.m = up(init.m);
    this.v = up(init.v);
    this.#lr = rt.keep(rt.zeros([1]));
    this.#hyper = decay.map((d) => ({
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: d ? o.weightDecay : 0,
    }));
  }

  /**
   * Record one step (1-based `t`) with these gradients at learning rate `lr`; returns the
   * pre-clipping global norm (a [1] tensor in the caller's scope).
   */
  step(grads: readonly Tensor[], lr: number, t: number): Tensor {
    const rt = this.rt;
    rt.write(this.#lr, new Float32Array([lr]));
    let sq: Tensor | undefined;
    for (const g of grads) {
      const s = red.sum(ew.mul(g, g).view([g.size]), 0, true);
      sq = sq ? ew.add(sq, s) : s;
    }
    const norm = ew.mapN("sqrt(a)", [sq!]);
    const factor = this.o.clip > 0
      ? ew.mapN("min(1.0, p.x / max(a, 1e-12))", [norm], { params: [this.o.clip] })
      : undefined;
    const next = grads.map((g, i) =>
      adamwStep(
        this.p[i],
        this.m[i],
        this.v[i],
        factor ? ew.mul(g, factor) : g,
        this.#lr,
        0,
        t,
        this.#hyper[i],
      )
    );
    // The old tensors' readers are recorded; the queue keeps the order.
    for (const list of [this.p, this.m, this.v]) list.forEach((x) => x.dispose());
    this.p = next.map((x) => rt.keep(x.p));
    this.m = next.map((x) => rt.keep(x.m));
    this.v = next.map((x) => rt.keep(x.v));
    return norm;
  }

  dispose(): void {
    for (const list of [this.p, this.m, this.v]) list.forEach((x) => x.dispose());
    this.#lr.dispose();
  }
}

/** Kept copies of tensors (the best-so-far parameters). */
export function copies(rt: Runtime, xs: readonly Tensor[]): Tensor[] {
  return xs.map((x) => {
    const y = rt.keep(rt.empty(x.shape));
    rt.copy(x, y);
    return y;
  });
}

export const readAll = (rt: Runtime, xs: readonly Tensor[]) =>
  Promise.all(xs.map((x) => rt.readF32(x)));
