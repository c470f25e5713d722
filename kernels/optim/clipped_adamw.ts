/**
 * AdamW on the GPU with global-norm gradient clipping, for training loops whose parameters
 * live on the GPU (pretraining, FT-ICR): one `adamwStep` dispatch per tensor (adamw.ts), the
 * norm and the clip factor computed on the GPU, so a step reads back nothing of its own (the
 * caller reads the norm with its loss). Parameters never leave the GPU between steps: a full
 * fine-tune of a 0.5B model would otherwise move 2 GB each way per step.
 *
 * Reference: per tensor, `adamwStepRef` (adamw_math.ts) on g·min(1, clip/‖g‖), ‖g‖ the L2
 * norm over every tensor's gradient together.
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";
import * as ew from "../ops/elementwise.ts";
import * as red from "../ops/reduce.ts";
import { adamwStep } from "./adamw.ts";
import type { AdamWHyper } from "./adamw_math.ts";

export interface ClippedAdamWHyper extends AdamWHyper {
  /** Max global gradient norm (≤ 0: no clipping). */
  readonly clip: number;
}

/** Host copies of the state, one array per tensor. */
export interface AdamWState {
  readonly p: readonly Float32Array[];
  readonly m: readonly Float32Array[];
  readonly v: readonly Float32Array[];
}

/** Parameters and moments on the GPU, owned by this object. */
export class ClippedAdamW {
  p: Tensor[];
  m: Tensor[];
  v: Tensor[];
  readonly #lr: Tensor;
  readonly #hyper: AdamWHyper[];

  /**
   * `decay[i]`: whether tensor i gets weight decay (matrices yes; biases, norms no). Moments
   * start at 0 unless given.
   */
  constructor(
    readonly rt: Runtime,
    readonly shapes: readonly (readonly number[])[],
    init: { p: readonly Float32Array[]; m?: readonly Float32Array[]; v?: readonly Float32Array[] },
    decay: readonly boolean[],
    readonly h: ClippedAdamWHyper,
  ) {
    this.p = this.#upload(init.p);
    this.m = this.#upload(init.m);
    this.v = this.#upload(init.v);
    this.#lr = rt.keep(rt.zeros([1]));
    this.#hyper = decay.map((d) => ({
      beta1: h.beta1,
      beta2: h.beta2,
      eps: h.eps,
      weightDecay: d ? h.weightDecay : 0,
    }));
  }

  #upload(xs: readonly Float32Array[] | undefined): Tensor[] {
    return this.shapes.map((s, i) =>
      this.rt.keep(xs ? this.rt.tensor(xs[i], s) : this.rt.zeros(s))
    );
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
    if (!sq) throw new RangeError("ClippedAdamW.step: no gradients");
    const norm = ew.mapN("sqrt(a)", [sq]);
    const factor = this.h.clip > 0
      ? ew.mapN("min(1.0, p.x / max(a, 1e-12))", [norm], { params: [this.h.clip] })
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
    this.#disposeState();
    this.p = next.map((x) => rt.keep(x.p));
    this.m = next.map((x) => rt.keep(x.m));
    this.v = next.map((x) => rt.keep(x.v));
    return norm;
  }

  /** Replace the state (a resumed checkpoint's). */
  load(s: AdamWState): void {
    this.#disposeState();
    this.p = this.#upload(s.p);
    this.m = this.#upload(s.m);
    this.v = this.#upload(s.v);
  }

  /** The state on the host (for a checkpoint). */
  async read(): Promise<AdamWState> {
    const all = (xs: Tensor[]) => Promise.all(xs.map((x) => this.rt.readF32(x)));
    const [p, m, v] = await Promise.all([all(this.p), all(this.m), all(this.v)]);
    return { p, m, v };
  }

  #disposeState(): void {
    for (const list of [this.p, this.m, this.v]) list.forEach((x) => x.dispose());
  }

  dispose(): void {
    this.#disposeState();
    this.#lr.dispose();
  }
}
