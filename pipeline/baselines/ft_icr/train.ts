/**
 * The FT-ICR training loop: `batch` problems per step (order reshuffled each epoch; PERK
 * uses 1), loss on the answer tokens after the in-context prompt, AdamW with global-norm clipping and a cosine
 * schedule after a linear warm-up (PERK's outer-loop settings), validation loss
 * `evalsPerEpoch` times per epoch with early stopping (patience) and the best parameters
 * kept. Checkpoints (checkpoint.ts) resume exactly: the problem order, dropout masks and
 * learning rate are functions of (seed, step), and the GPU kernels are deterministic.
 * A non-finite loss or gradient stops with an error naming the step and the problem,
 * before anything of that step is written.
 */
import type { Tensor } from "../../../kernels/runtime/tensor.ts";
import { grad } from "../../../kernels/autodiff/transforms.ts";
import { concat } from "../../../kernels/ops/strided.ts";
import type { GpuModel } from "../../model/gpu_model.ts";
import { cosineLr, OUTER_DEFAULTS } from "../../perk/outer_optim.ts";
import { shuffled } from "../../perk/train.ts";
import { answerBatch, answerLoss } from "../answer_loss.ts";
import type { IcrExample } from "../in_context.ts";
import { loadCheckpoint, type LoopState, saveCheckpoint, type TrainRecord } from "./checkpoint.ts";
import { type AdamWOptions, copies, FT_ADAMW, GpuAdamW, readAll } from "./optimizer.ts";
import type { Trainable } from "./trainable.ts";

export type { TrainRecord } from "./checkpoint.ts";

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
  readonly adamw?: Partial<AdamWOptions>;
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
  const { checkpoint: _c, checkpointEvery: _e, stopAfter: _s, ...rest } = o;
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
  const schedule = {
    ...OUTER_DEFAULTS,
    lr: o.lr,
    warmupFraction: o.warmupFraction ?? OUTER_DEFAULTS.warmupFraction,
    totalSteps,
  };
  const evalEvery = Math.max(1, Math.floor(perEpoch / (o.evalsPerEpoch ?? 2)));
  const valSet = val.slice(0, o.valLimit ?? val.length);
  const id = identity(t, train, val, o);
  const saved = o.checkpoint ? loadCheckpoint(o.checkpoint, id, t.shapes) : undefined;
  const opt = new GpuAdamW(
    rt,
    t.shapes,
    saved ? { p: saved.params, m: saved.m, v: saved.v } : { p: t.init },
    t.decay,
    { ...FT_ADAMW, ...o.adamw },
  );
  let best: Tensor[] = saved
    ? saved.best.map((x, i) => rt.keep(rt.tensor(x, t.shapes[i])))
    : copies(rt, opt.p);
  const loop: LoopState = saved?.loop ?? {
    step: 0,
    bestValLoss: null,
    bestStep: 0,
    sinceBest: 0,
    stopped: false,
    history: [],
  };
  const save = async () => {
    if (!o.checkpoint) return;
    const [params, m, v, b] = await Promise.all(
      [opt.p, opt.m, opt.v, best].map((x) => readAll(rt, x)),
    );
    saveCheckpoint(o.checkpoint, id, t.shapes, { loop, params, m, v, best: b });
  };
  try {
    let ranThisCall = 0;
    while (!loop.stopped && loop.step < totalSteps) {
      if (o.stopAfter !== undefined && ranThisCall >= o.stopAfter) break;
      const epoch = Math.floor(loop.step / perEpoch), k = loop.step % perEpoch;
      const picked = shuffled(train.length, o.seed, epoch).slice(k * B, (k + 1) * B);
      const exs = picked.map((i) => train[i]);
      const batch = answerBatch(exs);
      const lr = cosineLr(schedule, loop.step);
      const dropoutSeed = (o.seed * 1000003 + loop.step * 16) >>> 0;
      const stats = rt.keep(rt.scope(() => {
        const f = (...xs: Tensor[]) =>
          answerLoss(model, batch, { ...t.options(xs, true), dropoutSeed });
        const { value, grads } = grad(f, opt.p);
        const norm = opt.step(grads, lr, loop.step + 1);
        return concat([value.view([1]), norm.view([1])], 0); // one readback for both
      }));
      const [loss, gradNorm] = await rt.readF32(stats);
      stats.dispose();
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        throw new Error(
          `ft-icr-train: non-finite ${Number.isFinite(loss) ? "gradient" : "loss"} ` +
            `(loss ${loss}, gradient norm ${gradNorm}) at step ${loop.step + 1} ` +
            `(problems ${
              exs.map((e) => e.id).join(", ")
            }); nothing of this step was written. Lower ft_lr ` +
            `(now ${o.lr}) or check the data.`,
        );
      }
      loop.step++;
      ranThisCall++;
      let valLoss: number | undefined;
      if (loop.step % evalEvery === 0 || loop.step === totalSteps) {
        valLoss = await validationLoss(model, t, opt.p, valSet, B);
        if (loop.bestValLoss === null || valLoss < loop.bestValLoss) {
          loop.bestValLoss = valLoss;
          loop.bestStep = loop.step;
          loop.sinceBest = 0;
          best.forEach((x) => x.dispose());
          best = copies(rt, opt.p);
        } else if (++loop.sinceBest >= o.patience) loop.stopped = true;
      }
      const rec: TrainRecord = {
        step: loop.step,
        epoch,
        loss,
        gradNorm,
        lr,
        problems: exs.map((e) => e.id),
        ...(valLoss === undefined ? {} : { valLoss }),
      };
      loop.history.push(rec);
      onRecord(rec);
      const due = loop.step % (o.checkpointEvery ?? 1) === 0 || valLoss !== undefined ||
        loop.stopped || loop.step === totalSteps;
      if (due) await save();
    }
    const finished = loop.stopped || loop.step >= totalSteps;
    const out = await readAll(rt, loop.bestValLoss === null ? opt.p : best);
    return {
      best: out,
      bestValLoss: loop.bestValLoss ?? Infinity,
      bestStep: loop.bestValLoss === null ? loop.step : loop.bestStep,
      history: loop.history,
      finished,
      stepsDone: loop.step,
      totalSteps,
    };
  } finally {
    opt.dispose();
    best.forEach((x) => x.dispose());
  }
}
