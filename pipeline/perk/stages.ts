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
import { stageSources } from "../experiment/sources.ts";
import { encodeSafetensors, SafetensorsReader } from "../model/safetensors.ts";
import { gpuLora, GpuModel } from "../model/gpu_model.ts";
import { generateGreedyGpu } from "../model/gpu_generate.ts";
import { defaultLoraConfig, initLora, loraScale } from "../model/lora.ts";
import type { Model, Tensor as WTensor } from "../model/weights.ts";
import { encodeProblem } from "./encode_problem.ts";
import { perkLM } from "./lm_adapter.ts";
import { encodeContext } from "./meta_step.ts";
import { type MetaState, metaTrain, type TrainRecord } from "./train.ts";
import { initWeighting, weightingShapes } from "./weighting.ts";
import { type BaseModel, baseTokenizer, resolveBase } from "../model/base_stage.ts";

export const PerkParams = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  steps: Schema.Int,
  /** Leading inner steps whose gradient is detached (TGU). */
  truncate: Schema.Int,
  inner_lr: Schema.Number,
  outer_lr: Schema.Number,
  epochs: Schema.Int,
  patience: Schema.Int,
  seed: Schema.Int,
  dropout: Schema.Number,
  val_limit: Schema.Int,
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

const metaCodec: OutputCodec<MetaTrained> = {
  encode: (m) => ({
    json: { bestValLoss: m.bestValLoss, history: m.history, n: m.state.theta0.length },
    blobs: {
      "meta.safetensors": encodeSafetensors(metaEntries(m.state)),
    },
  }),
  decode: (e) => {
    const j = e.json as { bestValLoss: number | null; history: TrainRecord[]; n: number };
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

function loraFor(
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

export const metaTrainStage = defineStage({
  name: "perk-meta-train",
  version: 1,
  params: PerkParams,
  kernels: KERNELS,
  codec: metaCodec,
  run: (p, inputs: { base: BaseModel; train: Problem[]; validation: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      return yield* Effect.tryPromise({
        try: async () => {
          const base = resolveBase(inputs.base);
          const tok = baseTokenizer(inputs.base, base);
          const model = GpuModel.upload(rt, base);
          try {
            const lora = loraFor(base, p);
            const lm = perkLM(model, lora.specs, lora.scale ?? loraScale(lora.config), p.dropout);
            const J = lora.specs.length;
            const init: MetaState = {
              theta0: lora.specs.map((s) => lora.data.slice(s.offset, s.offset + s.size)),
              lr: new Float32Array(p.steps * J).fill(p.inner_lr),
              phi: initWeighting(base.config.dim, p.seed + 17),
            };
            const shapes = {
              theta0: lora.specs.map((s) => [...s.shape]),
              phi: weightingShapes(base.config.dim),
            };
            const train = inputs.train.map((q) => encodeProblem(tok, q));
            const val = inputs.validation.map((q) => encodeProblem(tok, q));
            const total = p.epochs * train.length;
            const r = await metaTrain(lm, init, shapes, train, val, {
              steps: p.steps,
              retained: Math.max(0, p.steps - p.truncate),
              epochs: p.epochs,
              patience: p.patience,
              seed: p.seed,
              outer: { lr: p.outer_lr },
              dropout: p.dropout > 0,
              valLimit: p.val_limit,
              checkpoint: `${ctx.scratch}/meta.safetensors`,
            }, (rec) => {
              ctx.progress(rec.step, total);
              ctx.metric({ stage: "perk-meta-train", ...rec });
            });
            return { state: r.best, bestValLoss: r.bestValLoss, history: r.history };
          } finally {
            model.dispose();
          }
        },
        catch: fail("perk-meta-train"),
      });
    }),
});

export const AnswerParams = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  steps: Schema.Int,
  accumulation: Schema.Int,
  max_new_tokens: Schema.Int,
  seed: Schema.Int,
});

export const answerStage = defineStage({
  name: "perk-answer",
  version: 1,
  params: AnswerParams,
  kernels: KERNELS,
  run: (p, inputs: { base: BaseModel; meta: MetaTrained; test: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      return yield* Effect.tryPromise({
        try: async (): Promise<Prediction[]> => {
          const base = resolveBase(inputs.base);
          const tok = baseTokenizer(inputs.base, base);
          const model = GpuModel.upload(rt, base);
          try {
            const lora = loraFor(base, { ...p, dropout: 0 });
            const lm = perkLM(model, lora.specs, lora.scale, 0);
            const shapes = lora.specs.map((s) => [...s.shape]);
            const wsh = weightingShapes(base.config.dim);
            const out: Prediction[] = [];
            for (const [i, problem] of inputs.test.entries()) {
              const enc = encodeProblem(tok, problem);
              await rt.sync();
              const t0 = performance.now();
              const before = rt.pool.inUse;
              rt.pool.resetPeak();
              const s = inputs.meta.state;
              const mp = {
                theta0: s.theta0.map((x, k) => rt.keep(rt.tensor(x, shapes[k]))),
                lr: rt.keep(rt.tensor(s.lr, [s.lr.length])),
                phi: s.phi.map((x, k) => rt.keep(rt.tensor(x, wsh[k]))),
              };
              const adapted = await encodeContext(lm, enc, mp, {
                steps: p.steps,
                groups: p.accumulation,
              });
              const [gen] = await generateGreedyGpu(model, [Array.from(enc.prompt)], {
                maxNewTokens: p.max_new_tokens,
                lora: gpuLora(lora.specs, adapted, lora.scale, 0),
              });
              // Staging textures (CPU adapters) live outside the pool: count all held.
              const peak = rt.pool.peak - before + rt.texelBytes;
              [...adapted, ...mp.theta0, mp.lr, ...mp.phi].forEach((t) => t.dispose());
              out.push({
                id: problem.id,
                prediction: tok.decode(gen.tokens),
                ms: performance.now() - t0,
                peakBytes: peak,
              });
              ctx.progress(i + 1, inputs.test.length);
            }
            return out;
          } finally {
            model.dispose();
          }
        },
        catch: fail("perk-answer"),
      });
    }),
});
