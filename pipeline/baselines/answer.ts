/**
 * Greedy answers with the whole context in the prompt, one problem at a time so that each
 * prediction carries its own cost: wall time (prompt prefill + decoding) and the peak GPU
 * pool bytes above what was resident before it started (weights and adapter excluded, as
 * PERK's answer stage counts), which is what the efficiency experiment plots against length.
 *
 * Memory: generateGreedyGpu prefills the prompt through the fused attention kernel (no
 * B·H·T·S score matrix; chunks bounded by their activations), so the answer's peak is the KV
 * cache and one chunk's activations, both linear in T; decoding steps use small masked
 * (B, H, 1, capacity) scores (README.md, "Cost per problem and memory").
 */
import type { Problem } from "../data/problems.ts";
import { problemsOf, UNIT } from "../experiment/cost.ts";
import type { Prediction } from "../experiment/methods.ts";
import { generateGreedyGpu } from "../model/gpu_generate.ts";
import type { GpuLora, GpuModel } from "../model/gpu_model.ts";
import { promptIds } from "../model/load.ts";
import type { Model } from "../model/weights.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { icrPromptText } from "./in_context.ts";
import { extendPositions, parseRopeChoice } from "./positions.ts";
import { type BaseModel, baseTokenizer, resolveBase } from "../base/base_stage.ts";
import { hostStep } from "../experiment/gpu_work.ts";

export interface AnswerOptions {
  readonly maxNewTokens: number;
  readonly lora?: GpuLora;
  readonly onProgress?: (done: number, total: number) => void;
  /** Checked before each problem: an aborted run stops there (pipeline/experiment/gpu_work.ts). */
  readonly signal?: AbortSignal;
}

/**
 * Prompt ids of every problem, with `examples` worked examples (prompt-only: 4; FT-ICR: as
 * trained). The caller extends the model's positions to fit them first.
 */
export function promptsOf(
  model: Model,
  tok: TextTokenizer,
  problems: readonly Problem[],
  examples: number,
): number[][] {
  return problems.map((p) => promptIds(model, tok, icrPromptText(p, examples)));
}

/**
 * The host work of an in-context answering stage: the base (as `tune` makes it, e.g. with
 * fine-tuned weights) with its positions extended to fit the longest prompt and
 * `maxNewTokens` more (RoPE scaled as `ropeScaling` allows), its tokenizer and the prompts
 * (promptsOf); `stage` names the stage in errors.
 */
export function inContextSetup(
  stage: string,
  base: BaseModel,
  problems: readonly Problem[],
  o: { readonly examples: number; readonly maxNewTokens: number; readonly ropeScaling: string },
  tune: (base: Model) => Model = (m) => m,
) {
  return hostStep(stage, () => {
    const model = resolveBase(base);
    const tok = baseTokenizer(base, model);
    const tuned = tune(model);
    const prompts = promptsOf(tuned, tok, problems, o.examples);
    const needed = Math.max(0, ...prompts.map((x) => x.length)) + o.maxNewTokens;
    const ext = extendPositions(tuned, needed, parseRopeChoice(o.ropeScaling), stage);
    return { ext, tok, prompts };
  });
}

/**
 * Seconds (reference host, cost.ts) to answer the upstream `test` problems with their whole
 * contexts in the prompt; undefined for a model other than the tiny base.
 */
export function inContextEstimate(model: string, test: unknown): number | undefined {
  const t = problemsOf(test);
  return model === "tiny" && t
    ? t.n * (t.tokens * UNIT.inContextMsPerToken / 1000 + UNIT.answerS)
    : undefined;
}

export async function answerInContext(
  gpu: GpuModel,
  tok: TextTokenizer,
  problems: readonly Problem[],
  prompts: readonly number[][],
  o: AnswerOptions,
): Promise<Prediction[]> {
  const rt = gpu.rt;
  const out: Prediction[] = [];
  for (const [i, p] of problems.entries()) {
    o.signal?.throwIfAborted();
    await rt.sync();
    const t0 = performance.now();
    const before = rt.pool.inUse;
    rt.pool.resetPeak();
    const [gen] = await generateGreedyGpu(gpu, [prompts[i]], {
      maxNewTokens: o.maxNewTokens,
      lora: o.lora,
    });
    if (gen.stop === "max_positions") {
      throw new Error(
        `problem ${p.id}: prompt (${prompts[i].length} tokens) and answer reached the model's ` +
          `${gpu.config.maxPositions} positions; extend them first (positions.ts)`,
      );
    }
    // Staging textures (CPU adapters) live outside the pool: count all that are held.
    const peakBytes = rt.pool.peak - before + rt.texelBytes;
    out.push({
      id: p.id,
      prediction: tok.decode(gen.tokens),
      ms: performance.now() - t0,
      peakBytes,
    });
    o.onProgress?.(i + 1, problems.length);
  }
  return out;
}
