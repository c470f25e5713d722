/**
 * PERK's experiment stages: `perk-meta-train` (θ₀, learned rates and weighting model from the
 * training problems, validation for early stopping) and `perk-answer` (encode each test
 * context by the inner loop, then greedy-answer from the question alone). Outputs are cached
 * by the experiment system; meta-training checkpoints in the stage's scratch folder, so an
 * interrupted run resumes where it stopped.
 */
import { Effect, Schema } from "effect";
import { Gpu } from "../../kernels/runtime/gpu.ts";
import type { Problem } from "../data/problems.ts";
import type { Prediction } from "../experiment/methods.ts";
import { defineStage, type OutputCodec } from "../experiment/stage.ts";
import { StageError } from "../experiment/errors.ts";
import { deviceWork, gpuResource, hostStep } from "../experiment/gpu_work.ts";
import { encodeS, problemsOf, UNIT } from "../experiment/cost.ts";
import { stageSources } from "../experiment/sources.ts";
import { encodeSafetensors, SafetensorsReader } from "../model/safetensors.ts";
import { GpuModel } from "../model/gpu_model.ts";
import { defaultLoraConfig, initLora, loraScale } from "../model/lora.ts";
import type { Model, Tensor as WTensor } from "../model/weights.ts";
import { encodeProblem, renumberDocuments, TARGET_KEYS } from "./encode_problem.ts";
import { perkLM } from "./lm_adapter.ts";
import { LR_PARAMS, type MetaState, metaTrain, type Shapes, type TrainRecord } from "./train.ts";
import { answerProblem, type AnswerSetup } from "./answer.ts";
import { perkExactMatch } from "../data/scorers.ts";
import { OUTER_SCHEDULES } from "./outer_optim.ts";
import { initWeighting, weightingShapes, WEIGHTS_FROM, type WeightsFrom } from "./weighting.ts";
import { type BaseModel, baseTokenizer, resolveBase } from "../base/base_stage.ts";

/**
 * The parameters every PERK stage reads: the base, its LoRA (`loraFor`), the inner steps N
 * (perk-answer's may be 0: answer from θ₀ alone, the no-encode control) and the seed.
 */
const SHARED_PARAMS = {
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  steps: Schema.Int,
  seed: Schema.Int,
};

export const PerkParams = Schema.Struct({
  ...SHARED_PARAMS,
  /** Leading inner steps whose gradient is detached (TGU). */
  truncate: Schema.Int,
  inner_lr: Schema.Number,
  /** Peak outer rate of the LoRA initial values. */
  outer_lr: Schema.Number,
  /** Peak outer rates of the learned inner rates and of the weighting model. */
  outer_lr_rates: Schema.Number,
  outer_lr_weighting: Schema.Number,
  /** The hidden states the weighting model reads (weighting.ts). */
  weighting_input: Schema.Literals(WEIGHTS_FROM),
  lr_param: Schema.Literals(LR_PARAMS),
  outer_schedule: Schema.Literals(OUTER_SCHEDULES),
  target: Schema.Literals(TARGET_KEYS),
  epochs: Schema.Int,
  patience: Schema.Int,
  dropout: Schema.Number,
  val_limit: Schema.Int,
  /** Greedy budget of the validation answers (accuracy curve). */
  max_new_tokens: Schema.Int,
});
export type PerkParams = typeof PerkParams.Type;

export interface MetaTrained {
  readonly state: MetaState;
  readonly bestValLoss: number;
  readonly history: TrainRecord[];
}

function metaEntries(s: MetaState): [string, WTensor][] {
  const t = (x: Float32Array): WTensor => ({ shape: [x.length], data: x });
  return [
    ...s.theta0.map((x, i): [string, WTensor] => [`theta0.${i}`, t(x)]),
    ["lr", t(s.lr)],
    ...s.phi.map((x, i): [string, WTensor] => [`phi.${i}`, t(x)]),
  ];
}

export const metaCodec: OutputCodec<MetaTrained> = {
  encode: (m) => ({
    json: {
      // null: never validated (perk-init)
      bestValLoss: Number.isFinite(m.bestValLoss) ? m.bestValLoss : null,
      history: m.history,
      n: m.state.theta0.length,
      weightsFrom: m.state.weightsFrom ?? "adapted",
    },
    blobs: {
      "meta.safetensors": encodeSafetensors(metaEntries(m.state)),
    },
  }),
  decode: (e) => {
    const j = e.json as {
      bestValLoss: number | null;
      history: TrainRecord[];
      n: number;
      weightsFrom?: WeightsFrom;
    };
    const bytes = e.blobs!["meta.safetensors"];
    const tmp = Deno.makeTempFileSync({ suffix: ".safetensors" });
    try {
      Deno.writeFileSync(tmp, bytes);
      const r = new SafetensorsReader(tmp);
      const get = (n: string) => r.read(n).data;
      const state: MetaState = {
        theta0: Array.from({ length: j.n }, (_, i) => get(`theta0.${i}`)),
        lr: get("lr"),
        phi: Array.from({ length: 4 }, (_, i) => get(`phi.${i}`)),
        // Entries written before the choice existed read the adapted model (the paper's).
        weightsFrom: j.weightsFrom ?? "adapted",
      };
      r.close();
      return { state, bestValLoss: j.bestValLoss ?? Infinity, history: j.history };
    } finally {
      Deno.removeSync(tmp);
    }
  },
};

// Every source these stages run (kernels, autodiff, model, PERK), from the import graph.
const KERNELS = stageSources(import.meta.url);

const fail = (stage: string) => (e: unknown) =>
  new StageError({ stage, message: e instanceof Error ? e.message : String(e) });

export function loraFor(
  base: Model,
  p: { rank: number; lora_alpha: number; dropout: number; seed: number },
) {
  const cfg = defaultLoraConfig(base.config, {
    rank: p.rank,
    alpha: p.lora_alpha,
    rsLora: true,
    dropout: p.dropout,
    seed: p.seed,
  });
  return initLora(base.config, cfg);
}

/** The meta-parameters before meta-training: PEFT's LoRA init, constant rates, φ₀. */
function initialState(
  base: Model,
  lora: ReturnType<typeof loraFor>,
  steps: number,
  lr: number,
  seed: number,
  weightsFrom: WeightsFrom = "adapted",
) {
  const init: MetaState = {
    theta0: lora.specs.map((s) => lora.data.slice(s.offset, s.offset + s.size)),
    lr: new Float32Array(steps * lora.specs.length).fill(lr),
    phi: initWeighting(base.config.dim, seed + 17),
    weightsFrom,
  };
  const shapes: Shapes = {
    theta0: lora.specs.map((s) => [...s.shape]),
    phi: weightingShapes(base.config.dim),
  };
  return { init, shapes };
}

export const metaTrainStage = defineStage({
  name: "perk-meta-train",
  // 2: log-parameterised rates, per-group outer rates, documents renumbered every step,
  // the target key, validation accuracy in the history. 3: the weighting model's input.
  version: 3,
  params: PerkParams,
  kernels: KERNELS,
  codec: metaCodec,
  // An upper bound: early stopping can end sooner. Validation twice an epoch and at the end,
  // each validation problem encoded twice (loss, then the accuracy answer).
  estimate: (p, up) => {
    const train = problemsOf(up.train), val = problemsOf(up.validation);
    if (p.model !== "tiny" || !train || !val) return undefined;
    const retained = Math.max(0, p.steps - p.truncate);
    const stepS = encodeS(train.tokens, p.steps) +
      train.tokens * retained * UNIT.retainedStepMsPerToken / 1000;
    const checks = p.epochs * Math.min(2, train.n) + 1;
    const checkS = Math.min(p.val_limit, val.n) * (2 * encodeS(val.tokens, p.steps) + UNIT.answerS);
    return p.epochs * train.n * stepS + checks * checkS;
  },
  run: (p, inputs: { base: BaseModel; train: Problem[]; validation: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const base = yield* hostStep("perk-meta-train", () => resolveBase(inputs.base));
      const model = yield* gpuResource("perk-meta-train", () => GpuModel.upload(rt, base));
      return yield* deviceWork("perk-meta-train", async (signal) => {
        const tok = baseTokenizer(inputs.base, base);
        const lora = loraFor(base, p);
        const scale = lora.scale ?? loraScale(lora.config);
        const lm = perkLM(model, lora.specs, scale, p.dropout);
        const { init, shapes } = initialState(
          base,
          lora,
          p.steps,
          p.inner_lr,
          p.seed,
          p.weighting_input,
        );
        const enc = (q: Problem) => encodeProblem(tok, q, tok.eosId, p.target);
        const train = inputs.train.map(enc);
        const val = inputs.validation.map(enc);
        const valSet = inputs.validation.slice(0, p.val_limit);
        // Validation accuracy answers without dropout, as the answer stage does.
        const answering: AnswerSetup = {
          lm: perkLM(model, lora.specs, scale, 0),
          model,
          specs: lora.specs,
          scale,
          shapes,
          tok,
        };
        const accuracy = async (s: MetaState) => {
          let right = 0;
          for (const [i, q] of valSet.entries()) {
            signal.throwIfAborted();
            const a = await answerProblem(answering, val[i], s, {
              steps: p.steps,
              maxNewTokens: p.max_new_tokens,
            });
            if (perkExactMatch(a.text, q.target)) right++;
          }
          return right / Math.max(1, valSet.length);
        };
        const total = p.epochs * train.length;
        const r = await metaTrain(lm, init, shapes, train, val, {
          steps: p.steps,
          retained: Math.max(0, p.steps - p.truncate),
          epochs: p.epochs,
          patience: p.patience,
          seed: p.seed,
          outer: { lr: p.outer_lr, schedule: p.outer_schedule },
          groupLr: { rates: p.outer_lr_rates, weighting: p.outer_lr_weighting },
          lrParam: p.lr_param,
          rateLayers: lora.specs.map((s) => s.layer),
          renumber: (q, perm) => renumberDocuments(tok, q, perm),
          signal,
          accuracy: valSet.length ? accuracy : undefined,
          dropout: p.dropout > 0,
          valLimit: p.val_limit,
          checkpoint: `${ctx.scratch}/meta.safetensors`,
        }, (rec) => {
          ctx.progress(rec.step, total);
          ctx.metric({ stage: "perk-meta-train", ...rec });
        });
        return { state: r.best, bestValLoss: r.bestValLoss, history: r.history };
      });
    }).pipe(Effect.scoped),
});

export const AnswerParams = Schema.Struct({
  ...SHARED_PARAMS,
  accumulation: Schema.Int,
  max_new_tokens: Schema.Int,
});

export const answerStage = defineStage({
  name: "perk-answer",
  version: 1,
  params: AnswerParams,
  kernels: KERNELS,
  estimate: (p, up) => {
    const test = problemsOf(up.test);
    return p.model === "tiny" && test
      ? test.n * (encodeS(test.tokens, p.steps) + UNIT.answerS)
      : undefined;
  },
  run: (p, inputs: { base: BaseModel; meta: MetaTrained; test: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const base = yield* hostStep("perk-answer", () => resolveBase(inputs.base));
      const model = yield* gpuResource("perk-answer", () => GpuModel.upload(rt, base));
      return yield* deviceWork("perk-answer", async (signal): Promise<Prediction[]> => {
        const tok = baseTokenizer(inputs.base, base);
        const lora = loraFor(base, { ...p, dropout: 0 });
        const setup: AnswerSetup = {
          lm: perkLM(model, lora.specs, lora.scale, 0),
          model,
          specs: lora.specs,
          scale: lora.scale,
          shapes: {
            theta0: lora.specs.map((s) => [...s.shape]),
            phi: weightingShapes(base.config.dim),
          },
          tok,
        };
        const out: Prediction[] = [];
        for (const [i, problem] of inputs.test.entries()) {
          signal.throwIfAborted();
          const enc = encodeProblem(tok, problem);
          await rt.sync();
          const t0 = performance.now();
          const before = rt.pool.inUse;
          rt.pool.resetPeak();
          const a = await answerProblem(setup, enc, inputs.meta.state, {
            steps: p.steps,
            groups: p.accumulation,
            maxNewTokens: p.max_new_tokens,
          });
          // Staging textures (CPU adapters) live outside the pool: count all held.
          const peak = rt.pool.peak - before + rt.texelBytes;
          out.push({
            id: problem.id,
            prediction: a.text,
            ms: performance.now() - t0,
            peakBytes: peak,
          });
          ctx.progress(i + 1, inputs.test.length);
        }
        return out;
      });
    }).pipe(Effect.scoped),
});

export const InitParams = Schema.Struct({ ...SHARED_PARAMS, inner_lr: Schema.Number });

/**
 * The meta-parameters with no meta-training (PEFT's LoRA init, the constant inner rate,
 * the initial weighting model): what the perk-ttt control encodes with.
 */
export const initStage = defineStage({
  name: "perk-init",
  version: 1,
  params: InitParams,
  codec: metaCodec,
  estimate: () => 0,
  run: (p, inputs: { base: BaseModel }) =>
    Effect.try({
      try: (): MetaTrained => {
        const base = resolveBase(inputs.base);
        const lora = loraFor(base, { ...p, dropout: 0 });
        const { init } = initialState(base, lora, p.steps, p.inner_lr, p.seed);
        return { state: init, bestValLoss: Infinity, history: [] };
      },
      catch: fail("perk-init"),
    }),
});
