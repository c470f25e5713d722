/**
 * FT-ICR's experiment stages: `ft-icr-train` (fine-tune the base on the cell's training
 * problems with their contexts in the prompt; one node per task × train length, shared by
 * every test length) and `ft-icr-eval` (greedy answers to the test problems, full context
 * in the prompt, with per-problem time and peak memory). Training checkpoints in the
 * stage's scratch folder, so an interrupted run resumes where it stopped.
 */
import { Effect, Schema } from "effect";
import { Gpu } from "../../../kernels/runtime/gpu.ts";
import type { Problem } from "../../data/problems.ts";
import { deviceWork, gpuResource, hostStep } from "../../experiment/gpu_work.ts";
import { problemsOf, UNIT } from "../../experiment/cost.ts";
import { stageSources } from "../../experiment/sources.ts";
import { defineStage, type OutputCodec } from "../../experiment/stage.ts";
import { type BaseModel, baseTokenizer, resolveBase } from "../../base/base_stage.ts";
import type { ModelConfig } from "../../model/config.ts";
import { gpuLora, GpuModel } from "../../model/gpu_model.ts";
import { encodeSafetensors, parseHeader, toFloat32 } from "../../model/safetensors.ts";
import type { Model } from "../../model/weights.ts";
import { answerInContext, inContextEstimate, inContextSetup } from "../answer.ts";
import { encodeIcr, type IcrExample } from "../in_context.ts";
import { extendPositions, parseRopeChoice } from "../positions.ts";
import { ftIcrTrain, type TrainRecord } from "./train.ts";
import { trainable } from "./trainable.ts";

/** Every source the FT-ICR stages run, from the import graph (hashed into their keys). */
const FT_ICR_SOURCES = stageSources(import.meta.url);

export const FtIcrTrainParams = Schema.Struct({
  model: Schema.String,
  /** true: every base weight is trained; false: a LoRA adapter of `rank`. */
  full: Schema.Boolean,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  dropout: Schema.Number,
  ft_lr: Schema.Number,
  epochs: Schema.Int,
  patience: Schema.Int,
  seed: Schema.Int,
  /** Problems per optimizer step. */
  batch: Schema.Int,
  /** Worked examples in the training prompts (and then in the eval prompts). */
  examples: Schema.Int,
  val_limit: Schema.Int,
  rope_scaling: Schema.String,
});
export type FtIcrTrainParams = typeof FtIcrTrainParams.Type;

/** The fine-tuned parameters and how they were trained. */
export interface FtIcrTrained {
  readonly kind: "lora" | "full";
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  readonly values: readonly Float32Array[];
  /** LoRA output scale (alpha/√r); unused for full fine-tuning. */
  readonly scale: number;
  /** The config trained with (positions extended when training sequences needed it). */
  readonly config: ModelConfig;
  readonly examples: number;
  readonly bestValLoss: number;
  readonly bestStep: number;
  readonly stepsDone: number;
  readonly totalSteps: number;
  readonly seconds: number;
  readonly history: readonly TrainRecord[];
}

type TrainedJson = Omit<FtIcrTrained, "values" | "bestValLoss"> & { bestValLoss: number | null };

const trainedCodec: OutputCodec<FtIcrTrained> = {
  encode: (t) => {
    const { values, bestValLoss, ...rest } = t;
    const json: TrainedJson = {
      ...rest,
      bestValLoss: Number.isFinite(bestValLoss) ? bestValLoss : null,
    };
    return {
      json,
      blobs: {
        "params.safetensors": encodeSafetensors(
          t.names.map((n, i) => [n, { shape: t.shapes[i], data: values[i] as Float32Array }]),
        ),
      },
    };
  },
  decode: (e) => {
    const j = e.json as TrainedJson;
    const bytes = e.blobs?.["params.safetensors"];
    if (!bytes) throw new Error("ft-icr-train output: params.safetensors is missing");
    const h = parseHeader(bytes, bytes.length, "ft-icr-train params.safetensors");
    const values = j.names.map((n) => {
      const x = h.entries.get(n);
      if (!x) throw new Error(`ft-icr-train output: tensor ${n} is missing`);
      return toFloat32(bytes.slice(x.begin, x.end), x.dtype, `tensor ${n}`);
    });
    return { ...j, values, bestValLoss: j.bestValLoss ?? Infinity };
  },
};

/** Longest row a batch of these problems makes (answerBatch pads rows to 16). */
const rowLength = (exs: readonly IcrExample[]) =>
  Math.ceil(Math.max(...exs.map((e) => e.prompt.length + e.answer.length - 1)) / 16) * 16;

export const ftIcrTrainStage = defineStage({
  name: "ft-icr-train",
  version: 1,
  params: FtIcrTrainParams,
  kernels: FT_ICR_SOURCES,
  codec: trainedCodec,
  estimate: (p, up) => {
    const train = problemsOf(up.train);
    return p.model === "tiny" && !p.full && train
      ? p.epochs * train.n * train.tokens * UNIT.ftMsPerToken / 1000
      : undefined;
  },
  run: (p, inputs: { base: BaseModel; train: Problem[]; validation: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const { ext, train, val } = yield* hostStep("ft-icr-train", () => {
        const base0 = resolveBase(inputs.base);
        const tok = baseTokenizer(inputs.base, base0);
        const enc = (ps: Problem[]) => ps.map((q) => encodeIcr(base0, tok, q, p.examples));
        const train = enc(inputs.train), val = enc(inputs.validation);
        if (!train.length) throw new Error("ft-icr-train: the cell has no training problems");
        // Training contexts as long as PERK's: positions are extended (or refused) here.
        const ext = extendPositions(
          base0,
          rowLength([...train, ...val]),
          parseRopeChoice(p.rope_scaling),
          "ft-icr-train",
        );
        return { ext, train, val };
      });
      if (ext.note) ctx.log(ext.note);
      const model = yield* gpuResource("ft-icr-train", () => GpuModel.upload(rt, ext.model));
      return yield* deviceWork(
        "ft-icr-train",
        (signal) => trainOn(model, ext.model, p, train, val, ctx, signal),
      );
    }).pipe(Effect.scoped),
});

async function trainOn(
  model: GpuModel,
  base: Model,
  p: FtIcrTrainParams,
  train: IcrExample[],
  val: IcrExample[],
  ctx: { scratch: string; progress(d: number, t: number): void; metric(r: object): void },
  signal: AbortSignal,
): Promise<FtIcrTrained> {
  const t = trainable(
    base,
    p.full ? { kind: "full" } : {
      kind: "lora",
      rank: p.rank,
      alpha: p.lora_alpha,
      dropout: p.dropout,
      seed: p.seed,
    },
  );
  const t0 = performance.now();
  const r = await ftIcrTrain(model, t, train, val, {
    lr: p.ft_lr,
    epochs: p.epochs,
    patience: p.patience,
    seed: p.seed,
    batch: p.batch,
    valLimit: p.val_limit,
    checkpoint: `${ctx.scratch}/ft_icr.safetensors`,
    // Full fine-tuning state is 4× the model: save it at validation checks only.
    checkpointEvery: p.full ? Number.MAX_SAFE_INTEGER : 1,
    signal,
  }, (rec) => {
    ctx.progress(rec.step, p.epochs * Math.ceil(train.length / p.batch));
    ctx.metric({ stage: "ft-icr-train", ...rec, problems: rec.problems.length });
  });
  return {
    kind: t.kind,
    names: t.names,
    shapes: t.shapes,
    values: r.best,
    scale: t.lora?.scale ?? 0,
    config: base.config,
    examples: p.examples,
    bestValLoss: r.bestValLoss,
    bestStep: r.bestStep,
    stepsDone: r.stepsDone,
    totalSteps: r.totalSteps,
    seconds: (performance.now() - t0) / 1000,
    history: r.history,
  };
}

export const FtIcrEvalParams = Schema.Struct({
  model: Schema.String,
  max_new_tokens: Schema.Int,
  rope_scaling: Schema.String,
});

/** The fine-tuned model: the base (positions as trained) with the trained tensors. */
function tunedModel(base: Model, t: FtIcrTrained): Model {
  if (t.kind === "lora") return { config: t.config, weights: positionsLike(base, t.config) };
  return {
    config: t.config,
    weights: new Map(t.names.map((n, i) => [n, { shape: t.shapes[i], data: t.values[i] }])),
  };
}

/** Base weights with the learned position table of `config`'s size (as trained). */
function positionsLike(base: Model, config: ModelConfig) {
  if (config.positions !== "learned" || config.maxPositions === base.config.maxPositions) {
    return base.weights;
  }
  return extendPositions(base, config.maxPositions, { type: "none" }, "ft-icr-eval").model
    .weights;
}

export const ftIcrEvalStage = defineStage({
  name: "ft-icr-eval",
  version: 1,
  params: FtIcrEvalParams,
  estimate: (p, up) => inContextEstimate(p.model, up.test),
  kernels: FT_ICR_SOURCES,
  run: (p, inputs: { base: BaseModel; trained: FtIcrTrained; test: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const t = inputs.trained;
      const { ext, tok, prompts } = yield* inContextSetup("ft-icr-eval", inputs.base, inputs.test, {
        examples: t.examples,
        maxNewTokens: p.max_new_tokens,
        ropeScaling: p.rope_scaling,
      }, (base) => tunedModel(base, t));
      if (ext.note) ctx.log(ext.note);
      const gpu = yield* gpuResource("ft-icr-eval", () => GpuModel.upload(rt, ext.model));
      const lora = yield* gpuResource("ft-icr-eval", () => {
        const xs = t.kind === "lora"
          ? t.values.map((v, i) => rt.keep(rt.tensor(v, t.shapes[i])))
          : [];
        return { xs, dispose: () => xs.forEach((x) => x.dispose()) };
      });
      return yield* deviceWork(
        "ft-icr-eval",
        (signal) =>
          answerInContext(gpu, tok, inputs.test, prompts, {
            maxNewTokens: p.max_new_tokens,
            lora: t.kind === "lora"
              ? gpuLora(t.names.map((name) => ({ name })), lora.xs, t.scale, 0)
              : undefined,
            onProgress: (d, n) => ctx.progress(d, n),
            signal,
          }),
      );
    }).pipe(Effect.scoped),
});
