/**
 * The outer loop (meta-train stage, perk-method §3) as a step over the shared loop
 * (pipeline/train/): one problem per step (segment order shuffled), exact TGU meta-gradient
 * on the GPU, outer AdamW on the host with clipping (outer_optim.ts) under a cosine or
 * constant schedule. The loop validates twice per epoch, stops early with patience, keeps the
 * best meta-parameters and checkpoints after every step (meta-parameters and optimizer state);
 * a resume is exact: everything random is derived from (seed, step), and the GPU kernels are
 * deterministic. A non-finite loss or gradient stops with an error naming the step and the
 * problem, before anything is written.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../model/weights.ts";
import { tensorOf } from "../train/checkpoint.ts";
import { trainLoop } from "../train/loop.ts";
import { shuffled } from "../train/shuffle.ts";
import { type EncodedProblem, outerBatch } from "./batch.ts";
import { encodeContext, type MetaParams, perkMetaGradient } from "./meta_step.ts";
import type { WeightsFrom } from "./weighting.ts";
import { outerLoss, type PerkLM, uploadTargets } from "./objectives.ts";
import {
  initOuterState,
  type MetaParam,
  OUTER_DEFAULTS,
  type OuterHyper,
  outerSchedule,
  outerStep,
} from "./outer_optim.ts";
import type { AdamWHyper } from "../../kernels/optim/adamw_math.ts";

/**
 * How learned inner rates are parameterised. "log" (default): the outer loop steps u with
 * lr = exp(u), so rates stay positive and move multiplicatively on their own scale. "raw":
 * the authors' form, rates stepped directly and unclamped — at the tiny base's outer rates
 * they go negative within a few dozen steps, and a negative rate makes the inner loop climb
 * the context loss (measured: 97 of 224 negative after 20 steps at outer lr 1e-3).
 */
export type LrParam = "log" | "raw";
export const LR_PARAMS: readonly LrParam[] = ["log", "raw"];

export interface MetaTrainOptions {
  /** The layer of each LoRA tensor: records then carry the rates' geometric mean per layer. */
  readonly rateLayers?: readonly number[];
  readonly steps: number; // inner steps N
  readonly retained: number; // T
  readonly cut?: boolean;
  readonly epochs: number;
  readonly patience: number;
  readonly seed: number;
  readonly outer?: Partial<Omit<OuterHyper, "totalSteps">>;
  readonly innerAdam?: AdamWHyper;
  /** LoRA dropout probability is the model's business; this seeds it per step. */
  readonly dropout?: boolean;
  /** Validation problems used per evaluation (default: all). */
  readonly valLimit?: number;
  /** Evaluations per epoch (paper: 2). */
  readonly evalsPerEpoch?: number;
  /** Checkpoint file (resume from it if present). */
  readonly checkpoint?: string;
  /** Stop after this many outer steps in this call (tests simulate an interruption). */
  readonly stopAfter?: number;
  /** Stops the loop at the next step boundary (an interrupted stage). */
  readonly signal?: AbortSignal;
  /** Learned-rate parameterisation (default "log"). */
  readonly lrParam?: LrParam;
  /**
   * Peak outer learning rates of the rate and weighting-model groups (default: outer.lr,
   * the initial adapter's). The schedule scales all three alike.
   */
  readonly groupLr?: { readonly rates?: number; readonly weighting?: number };
  /**
   * A training problem as seen at one outer step, given a permutation of its documents
   * (the authors renumber the "Document i:" prefixes every step, so no fact is tied to a
   * number). Default: the problem as encoded.
   */
  readonly renumber?: <P extends EncodedProblem>(p: P, perm: readonly number[]) => P;
  /** Validation accuracy at each evaluation (optional: it costs a greedy answer each). */
  readonly accuracy?: (s: MetaState) => Promise<number>;
}

/** Host copies of the meta-parameters. */
export interface MetaState {
  readonly theta0: Float32Array[];
  readonly lr: Float32Array; // (N · tensors)
  readonly phi: Float32Array[];
  /** The hidden states φ reads (weighting.ts); absent: "adapted", the paper's. */
  readonly weightsFrom?: WeightsFrom;
}

export interface TrainRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly outerLr: number;
  readonly problem: string;
  readonly valLoss?: number;
  readonly valAccuracy?: number;
  /** Learned inner rates after the step: min, geometric mean, max. */
  readonly rates?: { readonly min: number; readonly gmean: number; readonly max: number };
  /** Their geometric mean per layer (index = layer), when the layers are known. */
  readonly ratesByLayer?: readonly number[];
}

export interface MetaTrainResult {
  readonly best: MetaState;
  readonly bestValLoss: number;
  readonly history: TrainRecord[];
  readonly finished: boolean;
  readonly stepsDone: number;
}

const clone = (s: MetaState): MetaState => ({
  theta0: s.theta0.map((x) => x.slice()),
  lr: s.lr.slice(),
  phi: s.phi.map((x) => x.slice()),
  weightsFrom: s.weightsFrom,
});

const flat = (s: MetaState) => [...s.theta0, s.lr, ...s.phi];

/** A host vector as a checkpoint tensor. */
const vec = (name: string, data: Float32Array): [string, Tensor] => [
  name,
  { shape: [data.length], data },
];

export type Shapes = { theta0: number[][]; phi: number[][] };

/** A meta-state on the GPU (the caller owns the tensors: disposeParams). */
export function uploadMeta(rt: Runtime, s: MetaState, shapes: Shapes): MetaParams {
  return {
    theta0: s.theta0.map((x, i) => rt.keep(rt.tensor(x, shapes.theta0[i]))),
    lr: rt.keep(rt.tensor(s.lr, [s.lr.length])),
    phi: s.phi.map((x, i) => rt.keep(rt.tensor(x, shapes.phi[i]))),
    weightsFrom: s.weightsFrom,
  };
}
export function disposeParams(p: MetaParams): void {
  [...p.theta0, p.lr, ...p.phi].forEach((t) => t.dispose());
}

/** Mean outer loss over problems after test-time encoding (no meta-gradient). */
export async function validationLoss(
  lm: PerkLM,
  problems: readonly EncodedProblem[],
  s: MetaState,
  shapes: Shapes,
  steps: number,
): Promise<number> {
  const rt = lm.rt;
  let total = 0;
  for (const p of problems) {
    const mp = uploadMeta(rt, s, shapes);
    const adapted = await encodeContext(lm, p, mp, { steps });
    const b = outerBatch(p), t = uploadTargets(rt, b);
    const l = rt.keep(rt.scope(() => outerLoss(lm, b, t, adapted)));
    total += (await rt.readF32(l))[0];
    [l, t, ...adapted].forEach((x) => x.dispose());
    disposeParams(mp);
  }
  return total / Math.max(1, problems.length);
}

export async function metaTrain(
  lm: PerkLM,
  init: MetaState,
  shapes: Shapes,
  train: readonly (EncodedProblem & { id: string })[],
  val: readonly EncodedProblem[],
  o: MetaTrainOptions,
  onRecord: (r: TrainRecord) => void = () => {},
): Promise<MetaTrainResult> {
  const rt = lm.rt;
  const totalSteps = o.epochs * train.length;
  const hyper: OuterHyper = { ...OUTER_DEFAULTS, ...o.outer, totalSteps };
  const logRates = (o.lrParam ?? "log") === "log";
  if (logRates) {
    const bad = init.lr.findIndex((x) => !(x > 0));
    if (bad >= 0) {
      throw new RangeError(
        `meta-train: lr_param "log" needs positive inner rates; rate ${bad} is ${
          init.lr[bad]
        } (set inner_lr > 0 or lr_param raw)`,
      );
    }
  }
  const params: MetaParam[] = [
    ...init.theta0.map((v, i) => ({ name: `theta0.${i}`, value: v.slice(), decay: true })),
    // The checkpoint names the parameterisation, so a resume under the other one is refused.
    logRates
      ? {
        name: "log_lr",
        value: init.lr.map(Math.log),
        decay: false,
        lr: o.groupLr?.rates,
      }
      : { name: "lr", value: init.lr.slice(), decay: false, lr: o.groupLr?.rates },
    // weighting model: W1, b1, W2, b2 — no decay on biases
    ...init.phi.map((v, i) => ({
      name: `phi.${i}`,
      value: v.slice(),
      decay: i % 2 === 0,
      lr: o.groupLr?.weighting,
    })),
  ];
  const J = init.theta0.length;
  const view = (): MetaState => ({
    theta0: params.slice(0, J).map((p) => p.value),
    lr: logRates ? params[J].value.map(Math.exp) : params[J].value,
    phi: params.slice(J + 1).map((p) => p.value),
    weightsFrom: init.weightsFrom,
  });
  let opt = initOuterState(params);
  const valSet = val.slice(0, o.valLimit ?? val.length);
  const where = o.checkpoint ?? "meta-train";
  const r = await trainLoop({
    totalSteps,
    schedule: outerSchedule(hyper),
    stepsPerEpoch: Math.max(1, train.length),
    evalsPerEpoch: o.evalsPerEpoch,
    patience: o.patience,
    stopAfter: o.stopAfter,
    signal: o.signal,
    checkpoint: o.checkpoint === undefined ? undefined : { path: o.checkpoint },
  }, {
    start: (resumed) => {
      if (!resumed) return;
      const get = (n: string, p: MetaParam) =>
        tensorOf(resumed.tensors, n, p.value.length, where).slice();
      params.forEach((p) => p.value.set(get(`param.${p.name}`, p)));
      if (typeof resumed.extra !== "number") {
        throw new Error(`${where}: the checkpoint lacks the optimizer's step; delete it`);
      }
      opt = {
        step: resumed.extra,
        m: params.map((p) => get(`adam_m.${p.name}`, p)),
        v: params.map((p) => get(`adam_v.${p.name}`, p)),
      };
    },
    step: async ({ step, epoch, inEpoch, lr }) => {
      const drawn = train[shuffled(train.length, o.seed, epoch)[inEpoch]];
      const problem = o.renumber
        ? o.renumber(drawn, shuffled(drawn.segments.length, o.seed + 2, step))
        : drawn;
      const segOrder = shuffled(problem.segments.length, o.seed + 1, step);
      const state = view();
      const mp = uploadMeta(rt, state, shapes);
      const mg = await perkMetaGradient(lm, problem, mp, {
        steps: o.steps,
        retained: o.retained,
        cut: o.cut,
        order: segOrder,
        adam: o.innerAdam,
        dropoutSeed: o.dropout ? (o.seed * 1000003 + step * 16) >>> 0 : undefined,
      });
      const gradTs = [...mg.theta0, mg.lr, ...mg.phi];
      const grads = await Promise.all(gradTs.map((t) => rt.readF32(t)));
      // d/du of f(exp(u)) = f'(lr)·lr
      if (logRates) grads[J] = grads[J].map((g, i) => g * state.lr[i]);
      gradTs.forEach((t) => t.dispose());
      disposeParams(mp);
      if (!Number.isFinite(mg.loss)) {
        throw new Error(
          `meta-train: non-finite outer loss ${mg.loss} at step ${step} (problem ${problem.id}); ` +
            "no checkpoint was written for it. Lower outer_lr / inner_lr or check the data.",
        );
      }
      let info;
      try {
        info = outerStep(params, grads, opt, hyper, lr);
      } catch (e) {
        throw new Error(
          `meta-train: ${(e as Error).message} (problem ${problem.id}); nothing was written`,
        );
      }
      return (v): TrainRecord => ({
        step: step + 1,
        epoch,
        loss: mg.loss,
        gradNorm: info.gradNorm,
        outerLr: info.lr,
        problem: problem.id,
        ...(v === undefined ? {} : { valLoss: v.loss }),
        ...(v?.accuracy === undefined ? {} : { valAccuracy: v.accuracy }),
        rates: rateSummary(view().lr),
        ...(o.rateLayers ? { ratesByLayer: layerMeans(view().lr, o.rateLayers) } : {}),
      });
    },
    validate: async () => {
      const loss = await validationLoss(lm, valSet, view(), shapes, o.steps);
      return { loss, accuracy: o.accuracy ? await o.accuracy(view()) : undefined };
    },
    keeper: {
      snapshot: () => clone(view()),
      drop: () => {},
      tensors: (b) => Promise.resolve(flat(b).map((x, i) => vec(`${i}`, x))),
      restore: (t) => {
        const b = params.map((p, i) => tensorOf(t, `${i}`, p.value.length, where).slice());
        return {
          theta0: b.slice(0, J),
          lr: b[J],
          phi: b.slice(J + 1),
          weightsFrom: init.weightsFrom,
        };
      },
    },
    save: () =>
      Promise.resolve({
        tensors: params.flatMap((p, k) => [
          vec(`param.${p.name}`, p.value),
          vec(`adam_m.${p.name}`, opt.m[k]),
          vec(`adam_v.${p.name}`, opt.v[k]),
        ]),
        extra: opt.step,
      }),
  }, onRecord);
  return {
    best: r.best ?? clone(view()),
    bestValLoss: r.bestValLoss,
    history: r.history,
    finished: r.finished,
    stepsDone: r.stepsDone,
  };
}

/** Geometric mean of the rates (N steps × J tensors, row-major) of each layer's tensors. */
function layerMeans(lr: Float32Array, layers: readonly number[]): number[] {
  const J = layers.length, L = Math.max(...layers) + 1;
  const sum = new Float64Array(L), count = new Float64Array(L);
  lr.forEach((x, i) => {
    const l = layers[i % J];
    sum[l] += Math.log(Math.abs(x) || 1e-30);
    count[l]++;
  });
  return Array.from(sum, (s, l) => Math.exp(s / Math.max(1, count[l])));
}

function rateSummary(lr: Float32Array) {
  let min = Infinity, max = -Infinity, logSum = 0;
  for (const x of lr) {
    min = Math.min(min, x);
    max = Math.max(max, x);
    logSum += Math.log(Math.abs(x) || 1e-30);
  }
  return { min, gmean: Math.exp(logSum / Math.max(1, lr.length)), max };
}
