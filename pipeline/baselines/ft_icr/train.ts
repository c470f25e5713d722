/**
 * FT-ICR training as a step over the shared loop (pipeline/train/): `batch` problems per
 * step (order reshuffled each epoch; PERK uses 1), loss on the answer tokens after the
 * in-context prompt, GPU AdamW with global-norm clipping (kernels/optim/clipped_adamw.ts)
 * under a cosine schedule after a linear warm-up (PERK's outer-loop settings). The loop
 * validates `evalsPerEpoch` times per epoch, stops early (patience), keeps the best
 * parameters and checkpoints; a resume is exact, since the problem order, dropout masks and
 * learning rate are functions of (seed, step) and the GPU kernels are deterministic. A
 * non-finite loss or gradient stops with an error naming the step and the problems, before
 * anything of that step is written.
 */
import type { Tensor } from "../../../kernels/runtime/tensor.ts";
import { grad } from "../../../kernels/autodiff/transforms.ts";
import { concat } from "../../../kernels/ops/strided.ts";
import { ClippedAdamW, type ClippedAdamWHyper } from "../../../kernels/optim/clipped_adamw.ts";
import type { GpuModel } from "../../model/gpu_model.ts";
import { adamwTensors, gpuKeeper, loadAdamW } from "../../train/gpu_state.ts";
import { trainLoop } from "../../train/loop.ts";
import { scheduleByFraction } from "../../train/schedule.ts";
import { shuffled } from "../../train/shuffle.ts";
import { answerBatch, answerLoss } from "../answer_loss.ts";
import type { IcrExample } from "../in_context.ts";
import type { Trainable } from "./trainable.ts";

/** PERK's outer-loop AdamW settings (perk-method §3). */
export const FT_ADAMW: ClippedAdamWHyper = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  clip: 1.0,
};

/** PERK's outer-loop warm-up: 3% of the steps. */
const WARMUP_FRACTION = 0.03;

export interface TrainRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
  readonly problems: readonly string[];
  readonly valLoss?: number;
}

export interface FtIcrOptions {
  /** Peak learning rate (config key ft_lr). */
  readonly lr: number;
  readonly epochs: number;
  readonly patience: number;
  readonly seed: number;
  /** Problems per step (default 1, as PERK's outer loop). */
  readonly batch?: number;
  /** Fraction of the steps spent warming up linearly (PERK: 0.03). */
  readonly warmupFraction?: number;
  readonly adamw?: Partial<ClippedAdamWHyper>;
  /** Validation checks per epoch (PERK: 2). */
  readonly evalsPerEpoch?: number;
  /** Validation problems used per check (default: all). */
  readonly valLimit?: number;
  /** Checkpoint file; resumed from when present. */
  readonly checkpoint?: string;
  /** Save every this many steps (default 1); also at every validation check and the end. */
  readonly checkpointEvery?: number;
  /** Stop after this many steps in this call (tests simulate an interruption). */
  readonly stopAfter?: number;
  /** Stops at the next step boundary (an interrupted stage); resume continues exactly. */
  readonly signal?: AbortSignal;
}

export interface FtIcrResult {
  /** The parameters with the lowest validation loss (the last ones if never validated). */
  readonly best: Float32Array[];
  readonly bestValLoss: number;
  readonly bestStep: number;
  readonly history: TrainRecord[];
  /** Early-stopped or all epochs done (false: interrupted by stopAfter). */
  readonly finished: boolean;
  readonly stepsDone: number;
  readonly totalSteps: number;
}

/** Mean answer-token NLL over problems, `batch` at a time (no gradient, no dropout). */
export async function validationLoss(
  model: GpuModel,
  t: Trainable,
  params: readonly Tensor[],
  problems: readonly IcrExample[],
  batch = 1,
): Promise<number> {
  const rt = model.rt;
  let total = 0, tokens = 0;
  for (let i = 0; i < problems.length; i += batch) {
    const b = answerBatch(problems.slice(i, i + batch));
    const l = rt.keep(rt.scope(() => answerLoss(model, b, t.options(params, false))));
    total += (await rt.readF32(l))[0] * b.targets.length;
    tokens += b.targets.length;
    l.dispose();
  }
  return total / Math.max(1, tokens);
}

/** What makes a checkpoint reusable: everything that changes the result. */
function identity(
  t: Trainable,
  train: readonly IcrExample[],
  val: readonly IcrExample[],
  o: FtIcrOptions,
) {
  const { checkpoint: _c, checkpointEvery: _e, stopAfter: _s, signal: _a, ...rest } = o;
  return JSON.stringify({
    options: rest,
    kind: t.kind,
    names: t.names,
    shapes: t.shapes,
    train: train.map((x) => [x.id, x.prompt.length, x.answer.length]),
    val: val.map((x) => [x.id, x.prompt.length, x.answer.length]),
  });
}

export async function ftIcrTrain(
  model: GpuModel,
  t: Trainable,
  train: readonly IcrExample[],
  val: readonly IcrExample[],
  o: FtIcrOptions,
  onRecord: (r: TrainRecord) => void = () => {},
): Promise<FtIcrResult> {
  const rt = model.rt;
  if (!train.length) throw new Error("ft-icr-train: no training problems");
  const B = o.batch ?? 1;
  if (!(Number.isInteger(B) && B >= 1)) throw new Error(`ft-icr-train: batch ${B} must be ≥ 1`);
  const perEpoch = Math.ceil(train.length / B);
  const totalSteps = o.epochs * perEpoch;
  const valSet = val.slice(0, o.valLimit ?? val.length);
  const where = o.checkpoint ?? "ft-icr-train";
  const opt = new ClippedAdamW(rt, t.shapes, { p: t.init }, t.decay, { ...FT_ADAMW, ...o.adamw });
  try {
    const r = await trainLoop({
      totalSteps,
      schedule: scheduleByFraction(o.lr, totalSteps, o.warmupFraction ?? WARMUP_FRACTION),
      stepsPerEpoch: perEpoch,
      evalsPerEpoch: o.evalsPerEpoch,
      patience: o.patience,
      stopAfter: o.stopAfter,
      signal: o.signal,
      checkpoint: o.checkpoint === undefined ? undefined : {
        path: o.checkpoint,
        every: o.checkpointEvery,
        identity: identity(t, train, val, o),
        mismatch: (path) =>
          new Error(
            `${path}: this checkpoint was made with other options, parameters or problems; ` +
              "delete it to start over",
          ),
      },
    }, {
      start: (resumed) => resumed && loadAdamW(opt, t.names, resumed, where),
      step: async ({ step, epoch, inEpoch, lr }) => {
        const picked = shuffled(train.length, o.seed, epoch).slice(inEpoch * B, (inEpoch + 1) * B);
        const exs = picked.map((i) => train[i]);
        const batch = answerBatch(exs);
        const dropoutSeed = (o.seed * 1000003 + step * 16) >>> 0;
        const stats = rt.keep(rt.scope(() => {
          const f = (...xs: Tensor[]) =>
            answerLoss(model, batch, { ...t.options(xs, true), dropoutSeed });
          const { value, grads } = grad(f, opt.p);
          const norm = opt.step(grads, lr, step + 1);
          return concat([value.view([1]), norm.view([1])], 0); // one readback for both
        }));
        const [loss, gradNorm] = await rt.readF32(stats);
        stats.dispose();
        const ids = exs.map((e) => e.id);
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          throw new Error(
            `ft-icr-train: non-finite ${Number.isFinite(loss) ? "gradient" : "loss"} ` +
              `(loss ${loss}, gradient norm ${gradNorm}) at step ${step + 1} ` +
              `(problems ${ids.join(", ")}); nothing of this step was written. Lower ft_lr ` +
              `(now ${o.lr}) or check the data.`,
          );
        }
        return (v): TrainRecord => ({
          step: step + 1,
          epoch,
          loss,
          gradNorm,
          lr,
          problems: ids,
          ...(v === undefined ? {} : { valLoss: v.loss }),
        });
      },
      validate: async () => ({ loss: await validationLoss(model, t, opt.p, valSet, B) }),
      keeper: gpuKeeper(rt, t.names, () => opt.p, where),
      save: async () => ({ tensors: await adamwTensors(opt, t.names) }),
    }, onRecord);
    try {
      const best = await Promise.all((r.best ?? opt.p).map((x) => rt.readF32(x)));
      return {
        best,
        bestValLoss: r.bestValLoss,
        bestStep: r.bestStep,
        history: r.history,
        finished: r.finished,
        stepsDone: r.stepsDone,
        totalSteps,
      };
    } finally {
      r.best?.forEach((x) => x.dispose());
    }
  } finally {
    opt.dispose();
  }
}
