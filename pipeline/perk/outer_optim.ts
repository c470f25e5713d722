/**
 * The outer-loop optimizer (perk-method §3): AdamW on the meta-parameters (LoRA initial
 * values, learned inner learning rates, weighting model) with global-norm gradient
 * clipping and a cosine schedule with linear warm-up (pipeline/train/schedule.ts). Runs on
 * the CPU on float32 master copies: meta-parameters are small, and one read-back per outer
 * step costs ≤ 1% of a meta-training step. State is plain arrays so checkpoints restore it
 * exactly.
 */
import {
  lrAt,
  type Schedule,
  SCHEDULE_KINDS,
  scheduleByFraction,
  type ScheduleKind,
} from "../train/schedule.ts";

export interface OuterHyper {
  readonly lr: number; // peak learning rate (paper: 1e-5)
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly clip: number; // max global gradient norm (≤ 0: no clipping)
  readonly warmupFraction: number; // paper: 0.03
  /**
   * "cosine" (paper): warm-up, then cosine decay to 0. "constant": warm-up, then the peak.
   * On the tiny base the learned rates must keep growing for the inner loop to outweigh the
   * answer prior θ₀ picks up early; a decaying schedule stalls them and PERK collapses onto
   * one answer (PyTorch prototype, 150 steps: constant 38%, cosine 20%; pipeline/perk/README.md).
   */
  readonly schedule?: OuterSchedule;
  readonly totalSteps: number;
}

export const OUTER_DEFAULTS: Omit<OuterHyper, "totalSteps"> = {
  lr: 1e-5,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  clip: 1.0,
  warmupFraction: 0.03,
};

export type OuterSchedule = ScheduleKind;
export const OUTER_SCHEDULES: readonly OuterSchedule[] = SCHEDULE_KINDS;

export interface MetaParam {
  readonly name: string;
  readonly value: Float32Array;
  /** Biases and learned learning rates get no weight decay. */
  readonly decay: boolean;
  /**
   * This parameter group's peak learning rate (default: the hyper-parameters' `lr`). The
   * schedule scales every group alike. Learned inner rates live on another scale than the
   * LoRA initial values (log-rates move by ~1 per useful change, LoRA entries by ~1e-3), so
   * one shared rate either freezes the rates or wrecks the initial adapter.
   */
  readonly lr?: number;
}

export interface OuterState {
  step: number;
  readonly m: Float32Array[];
  readonly v: Float32Array[];
}

/** The schedule: warm-up over warmupFraction of totalSteps, then cosine to 0 (or constant). */
export function outerSchedule(h: OuterHyper): Schedule {
  return scheduleByFraction(h.lr, h.totalSteps, h.warmupFraction, h.schedule);
}

export function initOuterState(params: readonly MetaParam[]): OuterState {
  return {
    step: 0,
    m: params.map((p) => new Float32Array(p.value.length)),
    v: params.map((p) => new Float32Array(p.value.length)),
  };
}

/** Global L2 norm of a list of gradients. */
export function globalNorm(grads: readonly ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}

/**
 * One outer step, in place on `params[i].value` and `state`, at learning rate `lr` (default:
 * the schedule's at state.step; the training loop passes its own). Returns the gradient norm
 * before clipping and the learning rate used. Throws on a non-finite gradient, so a
 * poisoned update never reaches the parameters (or a checkpoint).
 */
export function outerStep(
  params: readonly MetaParam[],
  grads: readonly Float32Array[],
  state: OuterState,
  h: OuterHyper,
  lr: number = lrAt(outerSchedule(h), state.step),
): { gradNorm: number; lr: number } {
  const gradNorm = globalNorm(grads);
  if (!Number.isFinite(gradNorm)) {
    throw new RangeError(`non-finite meta-gradient (norm ${gradNorm}) at outer step ${state.step}`);
  }
  const scale = h.clip > 0 && gradNorm > h.clip ? h.clip / gradNorm : 1;
  const factor = h.lr > 0 ? lr / h.lr : 0;
  const t = state.step + 1;
  const c1 = 1 / (1 - h.beta1 ** t), c2 = 1 / Math.sqrt(1 - h.beta2 ** t);
  params.forEach((p, k) => {
    const g = grads[k], m = state.m[k], v = state.v[k], x = p.value;
    if (g.length !== x.length) {
      throw new RangeError(`gradient of ${p.name} has ${g.length} values, expected ${x.length}`);
    }
    const lrK = p.lr === undefined ? lr : p.lr * factor;
    const decay = p.decay ? 1 - lrK * h.weightDecay : 1;
    for (let i = 0; i < x.length; i++) {
      const gi = g[i] * scale;
      m[i] = h.beta1 * m[i] + (1 - h.beta1) * gi;
      v[i] = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
      x[i] = x[i] * decay - (lrK * c1 * m[i]) / (c2 * Math.sqrt(v[i]) + h.eps);
    }
  });
  state.step = t;
  return { gradNorm, lr };
}
