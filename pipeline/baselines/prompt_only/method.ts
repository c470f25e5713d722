/**
 * Prompt-only baseline as an experiment method: the base model (the node PERK and FT-ICR
 * share), no training, 4-shot in-context answers (BabiLong's instruction and examples).
 * Its answers are BabiLong's prose sentences without <output> tags, so score it with
 * `metric: babilong` (or subem); PERK's exact match compares the whole sentence.
 */
import { Schema } from "effect";
import type { Gpu } from "../../../kernels/runtime/gpu.ts";
import { node } from "../../experiment/graph.ts";
import type { Cell, Method } from "../../experiment/methods.ts";
import { BASE_SOURCES, baseNode } from "../../base/base_stage.ts";
import { parseRopeChoice } from "../positions.ts";
import { promptEvalStage } from "./stages.ts";

/** The config keys prompt-only reads (one field each: declared here only), with their rules. */
const Params = Schema.Struct({
  model: Schema.String,
  max_new_tokens: Schema.Int,
  seed: Schema.Int,
  base_profile: Schema.Literals(["tiny", "cpu", "micro"]),
  base_steps: Schema.Int,
  base: Schema.Literals(BASE_SOURCES),
  rope_scaling: Schema.String,
});
type Params = typeof Params.Type;

/** BabiLong's few-shot setting. */
const EXAMPLES = 4;

export const method: Method<Params, Gpu> = {
  name: "prompt-only",
  description: "the base model answering with the context in its prompt, no training",
  params: Params,
  predictions: (cell: Cell, p: Params) => {
    const rope = p.rope_scaling;
    parseRopeChoice(rope);
    return node(promptEvalStage, {
      model: p.model,
      max_new_tokens: p.max_new_tokens,
      examples: EXAMPLES,
      rope_scaling: rope,
    }, { base: baseNode(p.model, p.seed, p.base_profile, p.base_steps, p.base), test: cell.test });
  },
};
