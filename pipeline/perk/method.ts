/**
 * PERK as an experiment method: base model (shared with the baselines) → meta-train on the
 * cell's training problems (one node per task × train length, shared by every test length)
 * → encode each test context with the inner loop and answer from the question alone.
 */
import { Schema } from "effect";
import { node } from "../experiment/graph.ts";
import type { Cell, Method } from "../experiment/methods.ts";
import { baseNode } from "../model/base_stage.ts";
import { answerStage, metaTrainStage } from "./stages.ts";

const Params = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  steps: Schema.Int,
  truncate: Schema.Union([Schema.Literal("auto"), Schema.Int]),
  inner_lr: Schema.Number,
  outer_lr: Schema.Number,
  epochs: Schema.Int,
  patience: Schema.Int,
  accumulation: Schema.Int,
  max_new_tokens: Schema.Int,
  seed: Schema.Int,
  base_profile: Schema.Literals(["tiny", "cpu", "micro"]),
  base_steps: Schema.Int,
});
type Params = typeof Params.Type;

/** "1k" → 1024 tokens. */
const tokensOf = (len: string) => parseFloat(len) * (/k$/i.test(len) ? 1024 : 1);

/** Leading detached steps: the paper's "auto" is 2 for contexts ≤ 4K and 3 beyond. */
export function resolveTruncate(t: "auto" | number, trainLength: string, steps: number): number {
  const v = t === "auto" ? (tokensOf(trainLength) <= 4096 ? 2 : 3) : t;
  return Math.max(0, Math.min(steps, v));
}

/** LoRA dropout of the authors' code (inner and outer passes). */
const DROPOUT = 0.1;
/** Validation problems per early-stopping check (the cell's validation set is the pool). */
const VAL_LIMIT = 16;

export const method: Method<Params> = {
  name: "perk",
  description: "PERK: meta-learned test-time LoRA encoding of the context, then answering",
  configKeys: [
    "model",
    "rank",
    "lora_alpha",
    "steps",
    "truncate",
    "inner_lr",
    "outer_lr",
    "epochs",
    "patience",
    "accumulation",
    "max_new_tokens",
    "seed",
    "base_profile",
    "base_steps",
  ],
  params: Params,
  predictions: (cell: Cell, p: Params) => {
    const base = baseNode(p.model, p.seed, p.base_profile, p.base_steps);
    const meta = node(metaTrainStage, {
      model: p.model,
      rank: p.rank,
      lora_alpha: p.lora_alpha,
      steps: p.steps,
      truncate: resolveTruncate(p.truncate, cell.trainLength, p.steps),
      inner_lr: p.inner_lr,
      outer_lr: p.outer_lr,
      epochs: p.epochs,
      patience: p.patience,
      seed: p.seed,
      dropout: DROPOUT,
      val_limit: VAL_LIMIT,
    }, { base, train: cell.train, validation: cell.validation });
    return node(answerStage, {
      model: p.model,
      rank: p.rank,
      lora_alpha: p.lora_alpha,
      steps: p.steps,
      accumulation: p.accumulation,
      max_new_tokens: p.max_new_tokens,
      seed: p.seed,
    }, { base, meta, test: cell.test });
  },
};
