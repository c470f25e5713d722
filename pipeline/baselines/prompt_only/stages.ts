/**
 * The prompt-only baseline's stage `prompt-eval`: the base model, untouched, answers each
 * test problem greedily with BabiLong's instruction, `examples` worked examples (BabiLong
 * uses 4 in its few-shot setting), the whole context and the question in the prompt.
 */
import { Effect, Schema } from "effect";
import { Gpu } from "../../../kernels/runtime/gpu.ts";
import type { Problem } from "../../data/problems.ts";
import { deviceWork, gpuResource } from "../../experiment/gpu_work.ts";
import { stageSources } from "../../experiment/sources.ts";
import { defineStage } from "../../experiment/stage.ts";
import type { BaseModel } from "../../base/base_stage.ts";
import { GpuModel } from "../../model/gpu_model.ts";
import { answerInContext, inContextEstimate, inContextSetup } from "../answer.ts";

export const PromptEvalParams = Schema.Struct({
  model: Schema.String,
  max_new_tokens: Schema.Int,
  examples: Schema.Int,
  rope_scaling: Schema.String,
});

export const promptEvalStage = defineStage({
  name: "prompt-eval",
  version: 1,
  params: PromptEvalParams,
  estimate: (p, up) => inContextEstimate(p.model, up.test),
  kernels: stageSources(import.meta.url),
  run: (p, inputs: { base: BaseModel; test: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const { ext, tok, prompts } = yield* inContextSetup("prompt-eval", inputs.base, inputs.test, {
        examples: p.examples,
        maxNewTokens: p.max_new_tokens,
        ropeScaling: p.rope_scaling,
      });
      if (ext.note) ctx.log(ext.note);
      const gpu = yield* gpuResource("prompt-eval", () => GpuModel.upload(rt, ext.model));
      return yield* deviceWork("prompt-eval", (signal) =>
        answerInContext(gpu, tok, inputs.test, prompts, {
          maxNewTokens: p.max_new_tokens,
          onProgress: (d, n) =>
            ctx.progress(d, n),
          signal,
        }));
    }).pipe(Effect.scoped),
});
