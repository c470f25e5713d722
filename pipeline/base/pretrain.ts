/**
 * Pretraining of the tiny default base model on the embedded corpus (gpu_pretrain_data.ts):
 * next-token loss over `rows` windows of `seqLen` tokens per step, every weight trained
 * through the GPU model, AdamW with global-norm clipping (kernels/optim/clipped_adamw.ts;
 * weight decay on matrices only) and a cosine schedule after a linear warm-up, as a step
 * over the shared training loop (pipeline/train/).
 *
 * `pretrain(rt, options, onProgress)` is a plain function of a JSON-serialisable options
 * object: deterministic from `seed` (init, batches and kernels are all seeded or exact), so
 * the experiment system can cache it as a stage. With `checkpoint` it saves its state every
 * few steps and resumes from it; a resumed run ends with the same weights as an
 * uninterrupted one.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { concat } from "../../kernels/ops/strided.ts";
import { ClippedAdamW } from "../../kernels/optim/clipped_adamw.ts";
import { grad } from "../../kernels/autodiff/transforms.ts";
import { type ModelConfig, validateConfig } from "../model/config.ts";
import { ModelError } from "../model/errors.ts";
import { adamwTensors, loadAdamW } from "../train/gpu_state.ts";
import { trainLoop } from "../train/loop.ts";
import { type Schedule, scheduleBySteps } from "../train/schedule.ts";
import { TINY_VOCAB, tinyConfig } from "./tiny.ts";
import {
  expectedShapes,
  initRandomWeights,
  validateWeights,
  type Weights,
} from "../model/weights.ts";
import { GpuModel } from "../model/gpu_model.ts";
import { argmaxRows } from "../../kernels/autodiff/model_ops.ts";
import { loadModel } from "../model/load.ts";
import { pretrainData } from "./pretrain_data.ts";
import type { StoryAsk } from "./tracking_stories.ts";

/** Model sizes: the tiny default base, a smaller one for slow CPUs, and one for tests. */
export type PretrainProfile = "tiny" | "cpu" | "micro";

export interface PretrainOptions {
  readonly profile: PretrainProfile;
  readonly steps: number;
  /** Windows per step. */
  readonly rows: number;
  /** Tokens per window. */
  readonly seqLen: number;
  /** Peak learning rate (after warm-up), decayed by a cosine to minLrRatio·lr. */
  readonly lr: number;
  readonly minLrRatio: number;
  readonly warmupSteps: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Global gradient-norm clip (≤ 0: none). */
  readonly clip: number;
  /** Std of the N(0, std²) init; residual outputs (o, down) get std/√(2·layers). */
  readonly initStd: number;
  /** Fraction of windows from the generated task text (the rest: corpus prose). */
  readonly taskFraction: number;
  /**
   * Fraction of windows that are dense bAbI tracking stories (tracking_stories.ts), taken
   * before the task-text/prose split. Absent or 0: none (the default base).
   */
  readonly storyFraction?: number;
  /**
   * Sparse stories: up to this many prose sentences, on average, between a story's facts
   * (each window draws its own mean in [storyProse/4, storyProse]). Absent or 0: dense.
   */
  readonly storyProse?: number;
  /** Whom story questions ask about: "others" (default) or "anyone" (tracking_stories.ts). */
  readonly storyAsk?: StoryAsk;
  /** Loss weight of the stories' answered rooms (other tokens: 1). Absent: 1. */
  readonly answerWeight?: number;
  readonly corpus: string;
  /** Windows in the held-out evaluation batch (scored at the start and the end). */
  readonly evalRows: number;
  readonly seed: number;
  /**
   * Start from this model directory's weights (a base saved by this CLI) instead of the seeded
   * init: continued pretraining, e.g. a curriculum of dense stories first, then sparse ones.
   * Its config must be the profile's. The optimizer state starts fresh.
   */
  readonly init?: string;
  /** Save state to this directory every `every` steps and resume from it when present. */
  readonly checkpoint?: { readonly dir: string; readonly every: number };
  /** Stops at the next step boundary (an interrupted stage); resume continues exactly. */
  readonly signal?: AbortSignal;
}

/**
 * Defaults sized for this project's 2-core lavapipe machine (README.md "Pretraining"): the
 * `cpu` profile (the tiny profile costs 2.9× more per token), 100 steps of 4 × 256 tokens
 * (102,400 tokens at PERK's segment length) — 8 to 16 minutes there.
 */
export const PRETRAIN_DEFAULTS: PretrainOptions = {
  profile: "cpu",
  steps: 100,
  rows: 4,
  seqLen: 256,
  lr: 3e-3,
  minLrRatio: 0.1,
  warmupSteps: 10,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  clip: 1,
  initStd: 0.02,
  taskFraction: 0.5,
  corpus: "sotu",
  evalRows: 8,
  seed: 0,
};

export interface PretrainProgress {
  /** 1-based step just finished. */
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
  readonly tokens: number;
  readonly seconds: number;
  readonly tokensPerSecond: number;
}

export interface PretrainResult {
  readonly config: ModelConfig;
  /** Canonical layout (README.md), ready for saveHfModel. */
  readonly weights: Weights;
  /** Training loss of every step (mean NLL per token; weighted mean with answerWeight). */
  readonly losses: number[];
  readonly evalLossStart: number;
  readonly evalLossEnd: number;
  /** Tokens trained on (this run and any resumed part). */
  readonly tokens: number;
  /** Seconds of this process's training (a resumed part not included). */
  readonly seconds: number;
  readonly tokensPerSecond: number;
  /**
   * With stories: the share of answered rooms the final model predicts (greedy, first token)
   * in `evalRows` held-out story windows. Chance is 1/5 to 1/6.
   */
  readonly storyAccuracy?: number;
}

/** The model config of a profile over a compact vocabulary of `vocab` ids. */
export function profileConfig(profile: PretrainProfile, vocab: number): ModelConfig {
  const base = tinyConfig(vocab);
  let c: ModelConfig;
  switch (profile) {
    case "tiny":
      return base;
    case "cpu":
      // A third of tiny's FLOPs per token (dim 128, hd 32): see README.md "Pretraining".
      c = { ...base, dim: 128, headDim: 32, hidden: 352 };
      break;
    case "micro":
      c = { ...base, dim: 32, layers: 1, heads: 2, kvHeads: 2, headDim: 16, hidden: 64 };
      break;
    default:
      throw new ModelError(`pretrain: profile "${profile}" is not one of tiny, cpu, micro`);
  }
  validateConfig(c, `pretrain profile ${profile}`);
  return c;
}

/**
 * Per-position loss weights (B·T) when story answers are weighted: position t predicts token
 * t + 1, so it gets `w` when that token is an answer; a row's last position predicts nothing.
 * The loss is then the weighted mean (divided by the weights' total). Undefined when w is 1
 * or the batch has no answers: the plain mean.
 */
export function answerWeights(
  answers: Uint8Array,
  rows: number,
  seqLen: number,
  w: number,
): { weights: Float32Array; total: number } | undefined {
  if (w === 1 || !answers.includes(1)) return undefined;
  const weights = new Float32Array(rows * seqLen);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t + 1 < seqLen; t++) {
      const i = r * seqLen + t;
      weights[i] = answers[i + 1] ? w : 1;
      total += weights[i];
    }
  }
  return { weights, total };
}

/** Greedy accuracy on the answered rooms of held-out story windows (one window at a time). */
async function heldOutStoryAccuracy(
  model: GpuModel,
  weights: ReadonlyMap<string, Tensor>,
  o: PretrainOptions,
): Promise<number> {
  const rt = model.rt, T = o.seqLen;
  const data = pretrainData({
    seqLen: T,
    taskFraction: o.taskFraction,
    corpus: o.corpus,
    heldOut: 0.05,
    storyFraction: 1,
    storyProse: o.storyProse,
    storyAsk: o.storyAsk,
  });
  const { ids, answers } = data.marked(o.seed, "eval", o.evalRows);
  let right = 0, asked = 0;
  for (let r = 0; r < o.evalRows; r++) {
    const row = ids.subarray(r * T, (r + 1) * T);
    const pred = await rt.read(
      rt.scope(() => argmaxRows(model.forward(row, { weights }).logits!)),
    ) as Int32Array; // (T): the token each position predicts
    for (let t = 1; t < T; t++) {
      if (!answers[r * T + t]) continue;
      asked++;
      if (pred[t - 1] === row[t]) right++;
    }
  }
  return right / Math.max(1, asked);
}

/** Linear warm-up to lr, then cosine decay to minLrRatio·lr at the last step (0-based). */
export function pretrainSchedule(o: PretrainOptions): Schedule {
  return scheduleBySteps(o.lr, o.steps, o.warmupSteps, o.minLrRatio);
}

function check(o: PretrainOptions): void {
  const int = (k: keyof PretrainOptions, min: number) => {
    const v = o[k] as number;
    if (!Number.isInteger(v) || v < min) {
      throw new ModelError(`pretrain: option ${k} must be an integer ≥ ${min}, got ${v}`);
    }
  };
  int("steps", 1);
  int("rows", 1);
  int("seqLen", 2);
  int("warmupSteps", 0);
  int("evalRows", 1);
  if (!(o.lr > 0)) throw new ModelError(`pretrain: lr must be > 0, got ${o.lr}`);
  if (o.storyAsk !== undefined && o.storyAsk !== "others" && o.storyAsk !== "anyone") {
    throw new ModelError(`pretrain: storyAsk must be "others" or "anyone", got ${o.storyAsk}`);
  }
  if (o.storyProse !== undefined && !(o.storyProse >= 0)) {
    throw new ModelError(`pretrain: storyProse must be ≥ 0 (sentences), got ${o.storyProse}`);
  }
  if (o.answerWeight !== undefined && !(o.answerWeight > 0)) {
    throw new ModelError(`pretrain: answerWeight must be > 0, got ${o.answerWeight}`);
  }
  if (o.checkpoint && !(Number.isInteger(o.checkpoint.every) && o.checkpoint.every > 0)) {
    throw new ModelError("pretrain: checkpoint.every must be a positive integer");
  }
}

/**
 * The initial weights: `o.init`'s, or seeded N(0, std²) with residual outputs scaled by
 * 1/√(2·layers).
 */
export function pretrainInit(c: ModelConfig, o: PretrainOptions): Weights {
  if (o.init !== undefined) return initFrom(o.init, c, o.profile);
  const w = initRandomWeights(c, o.seed, { std: o.initStd });
  const k = 1 / Math.sqrt(2 * c.layers);
  for (const [name, t] of w) {
    if (/\.(o|down|proj)\.weight$/.test(name)) t.data.forEach((x, i) => (t.data[i] = x * k));
  }
  return w;
}

/** The weights of the base in `dir`, checked against the profile's config. */
function initFrom(dir: string, c: ModelConfig, profile: PretrainProfile): Weights {
  const m = loadModel(dir);
  const keys = Object.keys(c) as (keyof ModelConfig)[];
  const differ = keys.filter((k) => JSON.stringify(m.config[k]) !== JSON.stringify(c[k]));
  if (differ.length) {
    const what = differ.map((k) =>
      `${k}: ${JSON.stringify(m.config[k])} vs ${JSON.stringify(c[k])}`
    );
    throw new ModelError(
      `pretrain: init ${dir} is not a ${profile}-profile model (config differs in ` +
        `${what.join(", ")}); pass a base this CLI saved with the same profile`,
    );
  }
  validateWeights(c, m.weights, `pretrain: init ${dir}`);
  // The seeded init's order, so that a run from a base lists its tensors as a fresh one does.
  return new Map([...expectedShapes(c).keys()].map((n) => [n, m.weights.get(n)!]));
}

/**
 * The checkpoint file in `checkpoint.dir` (pipeline/train/checkpoint.ts's format). A file of
 * the older format (the same name beside a pretrain_state.json) is refused: delete it.
 */
const STATE_FILE = "pretrain_state.safetensors";

/**
 * Options that change the result (not the checkpoint location). Not `init` either: a
 * checkpoint holds the weights, so `init` only matters before the first one, and a curriculum
 * passes each stage's start as a fresh temporary directory.
 */
const identity = (o: PretrainOptions) =>
  JSON.stringify({ ...o, checkpoint: undefined, init: undefined, signal: undefined });

interface StepRecord {
  readonly step: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly lr: number;
}

/** Pretrain from scratch (or resume a checkpoint) and return the weights and loss curve. */
export async function pretrain(
  rt: Runtime,
  options: Partial<PretrainOptions> = {},
  onProgress: (p: PretrainProgress) => void = () => {},
): Promise<PretrainResult> {
  const o: PretrainOptions = { ...PRETRAIN_DEFAULTS, ...options };
  check(o);
  const config = profileConfig(o.profile, TINY_VOCAB);
  const data = pretrainData({
    seqLen: o.seqLen,
    taskFraction: o.taskFraction,
    corpus: o.corpus,
    heldOut: 0.05,
    storyFraction: o.storyFraction,
    storyProse: o.storyProse,
    storyAsk: o.storyAsk,
  });
  if (data.tok.vocabSize !== config.vocab) {
    throw new ModelError(
      `pretrain: fixtures/models/tiny/compact_vocab.json has ${data.tok.vocabSize} ids but ` +
        `the tiny config expects ${config.vocab}; rebuild it (see pipeline/base/tiny.ts)`,
    );
  }
  const init = pretrainInit(config, o);
  const names = [...init.keys()];
  const initial = names.map((n) => init.get(n)!);
  // The GpuModel provides the forward; its frozen copies are only the starting values.
  const model = GpuModel.upload(rt, { config, weights: init });
  // Weight decay on matrices only.
  const opt = new ClippedAdamW(
    rt,
    initial.map((t) => t.shape),
    { p: initial.map((t) => t.data) },
    initial.map((t) => t.shape.length === 2),
    { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, clip: o.clip },
  );
  const named = (p: readonly Tensor[]) => new Map(names.map((n, i) => [n, p[i]]));
  const evalIds = data.batch(o.seed, "eval", o.evalRows);
  const evalLoss = async (p: readonly Tensor[]) =>
    (await rt.readF32(
      rt.scope(() => model.loss(evalIds, { batch: o.evalRows, weights: named(p) })),
    ))[0];
  const perStep = o.rows * o.seqLen;
  const where = o.checkpoint ? `${o.checkpoint.dir}/${STATE_FILE}` : "pretrain";
  const ck = o.checkpoint;
  let evalLossStart = NaN, tokens0 = 0, t0 = 0;
  try {
    const r = await trainLoop<StepRecord>({
      totalSteps: o.steps,
      schedule: pretrainSchedule(o),
      signal: o.signal,
      checkpoint: ck && {
        path: where,
        every: ck.every,
        identity: identity(o),
        mismatch: () =>
          new ModelError(
            `pretrain: the checkpoint in ${ck.dir} was made with other options; ` +
              "remove it or use another checkpoint directory",
          ),
      },
    }, {
      start: async (resumed) => {
        if (resumed) {
          loadAdamW(opt, names, resumed, where);
          // null: it was NaN, which JSON cannot hold.
          evalLossStart = typeof resumed.extra === "number" ? resumed.extra : NaN;
          tokens0 = resumed.step * perStep;
        } else evalLossStart = await evalLoss(opt.p);
        t0 = performance.now();
      },
      step: async ({ step, lr }) => {
        const { ids, answers } = data.marked(o.seed, step, o.rows);
        const weighting = answerWeights(answers, o.rows, o.seqLen, o.answerWeight ?? 1);
        const stats = rt.keep(rt.scope(() => {
          const f = (...ws: Tensor[]) =>
            model.loss(ids, {
              batch: o.rows,
              weights: named(ws),
              tokenWeights: weighting?.weights,
              denominator: weighting?.total ?? o.rows * (o.seqLen - 1),
            });
          const { value, grads } = grad(f, opt.p);
          const norm = opt.step(grads, lr, step + 1);
          return concat([value.view([1]), norm.view([1])], 0); // one readback for both
        }));
        const [loss, gradNorm] = await rt.readF32(stats);
        stats.dispose();
        if (!Number.isFinite(loss)) {
          throw new ModelError(
            `pretrain: the loss became ${loss} at step ${step + 1}; lower lr (now ${o.lr})`,
          );
        }
        return () => ({ step: step + 1, loss, gradNorm, lr });
      },
      save: async () => ({ tensors: await adamwTensors(opt, names), extra: evalLossStart }),
    }, (rec) => {
      const tokens = rec.step * perStep, seconds = (performance.now() - t0) / 1000;
      onProgress({
        step: rec.step,
        steps: o.steps,
        loss: rec.loss,
        gradNorm: rec.gradNorm,
        lr: rec.lr,
        tokens,
        seconds,
        tokensPerSecond: (tokens - tokens0) / seconds,
      });
    });
    const seconds = (performance.now() - t0) / 1000;
    const tokens = r.stepsDone * perStep;
    const evalLossEnd = await evalLoss(opt.p);
    const storyAccuracy = (o.storyFraction ?? 0) > 0
      ? await heldOutStoryAccuracy(model, named(opt.p), o)
      : undefined;
    const data32 = await Promise.all(opt.p.map((t) => rt.readF32(t)));
    const weights: Weights = new Map(
      names.map((n, i) => [n, { shape: [...initial[i].shape], data: data32[i] }]),
    );
    return {
      config,
      weights,
      losses: r.history.map((x) => x.loss),
      evalLossStart,
      evalLossEnd,
      tokens,
      seconds,
      tokensPerSecond: (tokens - tokens0) / Math.max(seconds, 1e-9),
      ...(storyAccuracy === undefined ? {} : { storyAccuracy }),
    };
  } finally {
    opt.dispose();
    model.dispose();
  }
}
