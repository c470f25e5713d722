/**
 * The prompt-only baseline's stage `prompt-eval`: the base model, untouched, answers each
 * test problem greedily with BabiLong's instruction, `examples` worked examples (BabiLong
 * uses 4 in its few-shot setting), the whole context and the question in the prompt.
 */
import { Effect, Schema } from "effect";
import { Gpu } from "../../../kernels/runtime/gpu.ts";
import type { Problem } from "../../data/problems.ts";
import { deviceWork, gpuResource, hostStep } from "../../experiment/gpu_work.ts";
import { problemsOf, UNIT } from "../../experiment/cost.ts";
import { stageSources } from "../../experiment/sources.ts";
import { defineStage } from "../../experiment/stage.ts";
import { type BaseModel, baseTokenizer, resolveBase } from "../../base/base_stage.ts";
import { GpuModel } from "../../model/gpu_model.ts";
import { answerInContext, promptsOf } from "../answer.ts";
import { extendPositions, parseRopeChoice } from "../positions.ts";

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
  estimate: (p, up) => {
    const test = problemsOf(up.test);
    return p.model === "tiny" && test
      ? test.n * (test.tokens * UNIT.inContextMsPerToken / 1000 + UNIT.answerS)
      : undefined;
  },
  kernels: stageSources(import.meta.url),
  run: (p, inputs: { base: BaseModel; test: Problem[] }, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      const { ext, tok, prompts } = yield* hostStep("prompt-eval", () => {
        const base = resolveBase(inputs.base);
        const tok = baseTokenizer(inputs.base, base);
        const prompts = promptsOf(base, tok, inputs.test, p.examples);
        const needed = Math.max(0, ...prompts.map((x) => x.length)) + p.max_new_tokens;
        const ext = extendPositions(base, needed, parseRopeChoice(p.rope_scaling), "prompt-eval");
        return { ext, tok, prompts };
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
