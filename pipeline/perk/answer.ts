/**
 * PERK answering one question: upload the meta-parameters, encode the context with the inner
 * loop (or not: the no-encode control answers from θ₀ alone), then greedy-decode from the
 * question prompt with the adapted LoRA. One home for the answer stage, validation accuracy
 * during meta-training and the controls.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { generateGreedyGpu } from "../model/gpu_generate.ts";
import { gpuLora, type GpuModel } from "../model/gpu_model.ts";
import type { ParamSpec } from "../model/lora.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import type { EncodedProblem } from "./batch.ts";
import { encodeContext } from "./meta_step.ts";
import type { PerkLM } from "./objectives.ts";
import { disposeParams, type MetaState, type Shapes, uploadMeta } from "./train.ts";

export interface AnswerSetup {
  readonly lm: PerkLM;
  readonly model: GpuModel;
  readonly specs: readonly ParamSpec[];
  readonly scale: number;
  readonly shapes: Shapes;
  readonly tok: TextTokenizer;
}

export interface AnswerOptions {
  /** Inner steps N; 0 answers from θ₀ alone (the no-encode control). */
  readonly steps: number;
  /** Accumulation groups K over the context's segments. */
  readonly groups?: number;
  readonly maxNewTokens: number;
}

export interface Answer {
  readonly text: string;
  readonly tokens: number[];
}

/** Encode `problem`'s context from `state` and answer its question. */
export async function answerProblem(
  s: AnswerSetup,
  problem: EncodedProblem,
  state: MetaState,
  o: AnswerOptions,
): Promise<Answer> {
  const rt = s.lm.rt;
  const mp = uploadMeta(rt, state, s.shapes);
  let adapted: Tensor[] = [];
  try {
    adapted = o.steps > 0
      ? await encodeContext(s.lm, problem, mp, { steps: o.steps, groups: o.groups })
      : [];
    const [gen] = await generateGreedyGpu(s.model, [Array.from(problem.prompt)], {
      maxNewTokens: o.maxNewTokens,
      lora: gpuLora(s.specs, o.steps > 0 ? adapted : mp.theta0, s.scale, 0),
    });
    return { text: s.tok.decode(gen.tokens), tokens: gen.tokens };
  } finally {
    adapted.forEach((t) => t.dispose());
    disposeParams(mp);
  }
}
