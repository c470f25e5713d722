/**
 * FT-ICR (paper §4.1) as an experiment method: base model (the node PERK shares) → fine-tune
 * on the cell's training problems with the context in the prompt (one node per task × train
 * length, shared by every test length) → greedy answers to the test problems with the
 * context in the prompt. Scored by the experiment's shared score stage like PERK.
 */
import { Schema } from "effect";
import type { Gpu } from "../../../kernels/runtime/gpu.ts";
import { node } from "../../experiment/graph.ts";
import type { Cell, Method } from "../../experiment/methods.ts";
import { BASE_SOURCES, baseNode } from "../../base/base_stage.ts";
import { parseRopeChoice } from "../positions.ts";
import { ftIcrEvalStage, ftIcrTrainStage } from "./stages.ts";

/** The config keys FT-ICR reads (one field each: declared here only), with their rules. */
const Params = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  ft_lr: Schema.Number,
  epochs: Schema.Int,
  patience: Schema.Int,
  max_new_tokens: Schema.Int,
  seed: Schema.Int,
  base_profile: Schema.Literals(["tiny", "cpu", "micro"]),
  base_steps: Schema.Int,
  base: Schema.Literals(BASE_SOURCES),
  /** true: every base weight is trained; false: LoRA of the shared `rank` (like PERK). */
  ft_full: Schema.Boolean,
  /** Problems per optimizer step. */
  ft_batch: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  /** "none", "linear:F" or "yarn:F" (baselines/positions.ts). */
  rope_scaling: Schema.String,
});
type Params = typeof Params.Type;

/** LoRA dropout while fine-tuning (PERK's, the authors' code). */
const DROPOUT = 0.1;
/** Validation problems per early-stopping check (as PERK's meta-training). */
const VAL_LIMIT = 16;
/**
 * Worked examples in FT-ICR's prompts: none — fine-tuning teaches the answer form, and the
 * prompt stays the context plus BabiLong's instructions, as long as PERK's contexts.
 */
const EXAMPLES = 0;

export const method: Method<Params, Gpu> = {
  name: "ft-icr",
  description:
    "FT-ICR baseline: the base model fine-tuned to answer with the context in its prompt",
  params: Params,
  predictions: (cell: Cell, p: Params) => {
    const full = p.ft_full, rope = p.rope_scaling;
    parseRopeChoice(rope); // a bad value fails while planning, not after training
    const base = baseNode(p.model, p.seed, p.base_profile, p.base_steps, p.base);
    const trained = node(ftIcrTrainStage, {
      model: p.model,
      full,
      // Full fine-tuning has no adapter: fixed values keep one cache key for it.
      rank: full ? 0 : p.rank,
      lora_alpha: full ? 0 : p.lora_alpha,
      dropout: full ? 0 : DROPOUT,
      ft_lr: p.ft_lr,
      epochs: p.epochs,
      patience: p.patience,
      seed: p.seed,
      batch: p.ft_batch,
      examples: EXAMPLES,
      val_limit: VAL_LIMIT,
      rope_scaling: rope,
    }, { base, train: cell.train, validation: cell.validation });
    return node(ftIcrEvalStage, {
      model: p.model,
      max_new_tokens: p.max_new_tokens,
      rope_scaling: rope,
    }, { base, trained, test: cell.test });
  },
};
