/**
 * PERK as an experiment method: base model (shared with the baselines) → meta-train on the
 * cell's training problems (one node per task × train length, shared by every test length)
 * → encode each test context with the inner loop and answer from the question alone.
 *
 * Its two controls (method_no_encode.ts, method_ttt.ts) reuse these nodes: `perk-no-encode`
 * answers from the same meta-trained θ₀ without the inner loop (same cache key, so no extra
 * training), and `perk-ttt` encodes with the untrained init and a constant rate (test-time
 * training alone). The config keys the three read are PerkMethodParams' fields.
 */
import { Schema } from "effect";
import type { Gpu } from "../../kernels/runtime/gpu.ts";
import { type Node, node } from "../experiment/graph.ts";
import type { Cell, Method } from "../experiment/methods.ts";
import { BASE_SOURCES, type BaseModel, baseNode } from "../base/base_stage.ts";
import { answerStage, initStage, type MetaTrained, metaTrainStage } from "./stages.ts";
import { LR_PARAMS } from "./train.ts";
import { TARGET_KEYS } from "./encode_problem.ts";
import { OUTER_SCHEDULES } from "./outer_optim.ts";
import { WEIGHTS_FROM } from "./weighting.ts";

/** The config keys PERK and its controls read (one field each: declared here only). */
export const PerkMethodParams = Schema.Struct({
  model: Schema.String,
  rank: Schema.Int,
  lora_alpha: Schema.Number,
  lora_dropout: Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
  steps: Schema.Int,
  truncate: Schema.Union([Schema.Literal("auto"), Schema.Int]),
  inner_lr: Schema.Number,
  lr_param: Schema.Literals(LR_PARAMS),
  outer_schedule: Schema.Literals(OUTER_SCHEDULES),
  outer_lr: Schema.Number,
  outer_lr_rates: Schema.Number,
  outer_lr_weighting: Schema.Number,
  weighting_input: Schema.Literals(WEIGHTS_FROM),
  target: Schema.Literals(TARGET_KEYS),
  epochs: Schema.Int,
  patience: Schema.Int,
  accumulation: Schema.Int,
  max_new_tokens: Schema.Int,
  seed: Schema.Int,
  base_profile: Schema.Literals(["tiny", "cpu", "micro"]),
  base_steps: Schema.Int,
  base: Schema.Literals(BASE_SOURCES),
});
export type PerkMethodParams = typeof PerkMethodParams.Type;

/** "1k" → 1024 tokens; "256" → 256. */
const tokensOf = (len: string) => parseFloat(len) * (/k$/i.test(len) ? 1024 : 1);

/** Leading detached steps: the paper's "auto" is 2 for contexts ≤ 4K and 3 beyond. */
export function resolveTruncate(t: "auto" | number, trainLength: string, steps: number): number {
  const v = t === "auto" ? (tokensOf(trainLength) <= 4096 ? 2 : 3) : t;
  return Math.max(0, Math.min(steps, v));
}

/** Validation problems per early-stopping check (the cell's validation set is the pool). */
const VAL_LIMIT = 16;

export const perkBase = (p: PerkMethodParams): Node<BaseModel, Gpu> =>
  baseNode(p.model, p.seed, p.base_profile, p.base_steps, p.base);

/** The meta-training node of a cell (shared by perk and perk-no-encode). */
export function metaNode(cell: Cell, p: PerkMethodParams): Node<MetaTrained, Gpu> {
  return node(metaTrainStage, {
    model: p.model,
    rank: p.rank,
    lora_alpha: p.lora_alpha,
    steps: p.steps,
    truncate: resolveTruncate(p.truncate, cell.trainLength, p.steps),
    inner_lr: p.inner_lr,
    outer_lr: p.outer_lr,
    outer_lr_rates: p.outer_lr_rates,
    outer_lr_weighting: p.outer_lr_weighting,
    weighting_input: p.weighting_input,
    lr_param: p.lr_param,
    outer_schedule: p.outer_schedule,
    target: p.target,
    epochs: p.epochs,
    patience: p.patience,
    seed: p.seed,
    dropout: p.lora_dropout,
    val_limit: VAL_LIMIT,
    max_new_tokens: p.max_new_tokens,
  }, { base: perkBase(p), train: cell.train, validation: cell.validation });
}

/** The untrained meta-parameters (perk-ttt). */
export function initNode(p: PerkMethodParams): Node<MetaTrained, Gpu> {
  return node(initStage, {
    model: p.model,
    rank: p.rank,
    lora_alpha: p.lora_alpha,
    steps: p.steps,
    inner_lr: p.inner_lr,
    seed: p.seed,
  }, { base: perkBase(p) });
}

/** Answers of a cell's test problems from `meta`, with `steps` inner steps (0: none). */
export function answerNode(
  cell: Cell,
  p: PerkMethodParams,
  meta: Node<MetaTrained, Gpu>,
  steps: number,
) {
  return node(answerStage, {
    model: p.model,
    rank: p.rank,
    lora_alpha: p.lora_alpha,
    steps,
    accumulation: p.accumulation,
    max_new_tokens: p.max_new_tokens,
    seed: p.seed,
  }, { base: perkBase(p), meta, test: cell.test });
}

export const method: Method<PerkMethodParams, Gpu> = {
  name: "perk",
  description: "PERK: meta-learned test-time LoRA encoding of the context, then answering",
  params: PerkMethodParams,
  predictions: (cell, p) => answerNode(cell, p, metaNode(cell, p), p.steps),
};
