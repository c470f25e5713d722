/**
 * Every configuration key of every experiment, with its Schema and the shared defaults of
 * the two profiles — the one place defaults live. Experiments (experiments/*.ts) override
 * only what they are about; users override with --set, --config and --model.
 *
 * cpu:   the fallback-adapter profile: the tiny default base, sizes that fit a 2-core CPU.
 * paper: PERK's hyperparameters (Qwen2.5-0.5B or --model PATH, rank 256, N = 4, truncation
 *        per length, 8K training contexts where the experiment trains long).
 */
import { Schema } from "effect";
import {
  type Config,
  type Constraint,
  field,
  type Profile,
} from "../pipeline/experiment/config.ts";
import { coreFields } from "../pipeline/experiment/fields.ts";
import { METHOD_NAMES } from "./methods.ts";
import { LR_PARAMS } from "../pipeline/perk/train.ts";
import { TARGET_KEYS } from "../pipeline/perk/encode_problem.ts";
import { OUTER_SCHEDULES } from "../pipeline/perk/outer_optim.ts";
import { BASE_SOURCES } from "../pipeline/base/base_stage.ts";
import { WEIGHTS_FROM } from "../pipeline/perk/weighting.ts";

const int = (min: number, doc: string) =>
  field(Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)), `an integer ≥ ${min}`, doc);
const positive = (doc: string) =>
  field(Schema.Number.check(Schema.isGreaterThan(0)), "a number > 0", doc);

export const FIELDS = {
  ...coreFields(METHOD_NAMES),
  model: field(
    Schema.String.check(Schema.isNonEmpty()),
    '"tiny" (the small base pretrained here), "qwen2.5-0.5b", or a model directory',
    "base language model (--model PATH sets it)",
  ),
  rank: int(1, "LoRA rank"),
  lora_alpha: positive("LoRA alpha (rank-stabilised scaling alpha/sqrt(rank))"),
  steps: int(1, "inner-loop gradient steps N"),
  truncate: field(
    Schema.Union([Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), Schema.Literal("auto")]),
    'an integer ≥ 0 (leading inner steps detached), or "auto" (2 up to 4K, 3 from 8K)',
    "truncated gradient unrolling: how many leading inner steps are detached",
  ),
  inner_lr: positive(
    "initial learned inner learning rate (one per LoRA tensor per step; perk-ttt's constant rate)",
  ),
  lr_param: field(
    Schema.Literals(LR_PARAMS),
    '"log" or "raw"',
    'learned inner rates: "log" steps log-rates (positive, own scale); "raw" the authors\' unclamped form',
  ),
  outer_lr: positive("meta-training AdamW peak learning rate of the LoRA initial values"),
  outer_lr_rates: positive("meta-training peak learning rate of the learned inner rates"),
  outer_schedule: field(
    Schema.Literals(OUTER_SCHEDULES),
    '"cosine" or "constant"',
    "meta-training schedule after the 3% warm-up: cosine decay to 0 (paper) or constant",
  ),
  outer_lr_weighting: field(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(0)),
    "a number ≥ 0 (0 keeps the weighting model at its initial, uniform weights)",
    "meta-training peak learning rate of the token-weighting model",
  ),
  weighting_input: field(
    Schema.Literals(WEIGHTS_FROM),
    '"adapted" or "base"',
    "the hidden states the token-weighting model reads: the adapted model's (paper) or the " +
      "frozen base's (CaMeLS-style, computed once per context)",
  ),
  target: field(
    Schema.Literals(TARGET_KEYS),
    '"support_answer" or "answer"',
    "PERK's outer target: supporting facts then the answer (paper), or the answer alone",
  ),
  lora_dropout: field(
    Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThan(1)),
    "a number in [0, 1)",
    "LoRA dropout during meta-training (inner and outer passes; paper 0.1)",
  ),
  epochs: int(1, "meta-training / fine-tuning epochs (upper bound with early stopping)"),
  patience: int(1, "early-stopping patience in validation checks"),
  accumulation: int(1, "gradient accumulation groups over the context's segments at inference"),
  max_new_tokens: int(1, "greedy decoding budget per answer"),
  ft_lr: positive("FT-ICR fine-tuning learning rate"),
  base_profile: field(
    Schema.Literals(["tiny", "cpu", "micro"]),
    '"tiny", "cpu" or "micro"',
    'size of the base pretrained here when model = "tiny" (pipeline/base/pretrain.ts)',
  ),
  base_steps: int(1, 'pretraining steps of the base when model = "tiny" and base = "pretrain"'),
  base: field(
    Schema.Literals(BASE_SOURCES),
    '"fixture" or "pretrain"',
    'where model = "tiny" comes from: the shipped pretrained base, or pretraining in the run',
  ),
  ft_full: field(
    Schema.Boolean,
    "true or false",
    "FT-ICR trains every base weight instead of a LoRA adapter",
  ),
  ft_batch: int(1, "FT-ICR problems per optimizer step"),
  rope_scaling: field(
    Schema.String.check(Schema.isPattern(/^(none|linear:\d+(\.\d+)?|yarn:\d+(\.\d+)?)$/)),
    '"none", "linear:F" or "yarn:F"',
    "RoPE scaling for baseline contexts longer than the model's positions",
  ),
};

export type Fields = typeof FIELDS;

const shared: Config = {
  dataset: "babilong",
  tasks: ["qa1"],
  methods: ["perk", "ft-icr"],
  train_position: "rnd",
  test_position: "rnd",
  seed: 0,
  babi_source: "simulator",
  segment_tokens: 256,
  tokenizer: "gpt2",
  metric: "perk-em",
  truncate: "auto",
  steps: 4,
  lora_alpha: 16,
  // The paper's LoRA dropout (inner and outer passes in the authors' code).
  lora_dropout: 0.1,
  // Positive rates on their own scale; "raw" reproduces the authors' unclamped form.
  lr_param: "log",
  outer_schedule: "cosine",
  patience: 10,
  base_profile: "cpu",
  base_steps: 100,
  base: "fixture",
  ft_full: false,
  ft_batch: 1,
  rope_scaling: "none",
  accumulation: 1,
  weighting_input: "adapted",
};

export const DEFAULTS: Readonly<Record<Profile, Config>> = {
  cpu: {
    ...shared,
    model: "tiny",
    // The regime PERK learns in on this CPU (pipeline/perk/README.md): short training contexts
    // (one 256-token segment; PERK reads a longer test context segment by segment), 300 outer
    // steps of one problem each, a 4-problem validation (loss and accuracy curve), tests at
    // the experiment's length. Every experiment's cpu profile fits 90 min on the reference
    // host: `--dry-run` prints the estimate (pipeline/experiment/cost.ts).
    train_lengths: ["256"],
    test_lengths: ["1k"],
    n_train: 300,
    n_validation: 4,
    n_test: 200,
    rank: 16,
    // Measured by the inner-rate probe (pipeline/perk/README.md): 5e-5 (Qwen's) moves a LoRA
    // entry by at most 2e-4 in four steps on the tiny base and memorises nothing.
    inner_lr: 3e-3,
    // At 1e-3 meta-training wrecks the base through θ₀ (context loss 3.2 → 12.8 in the
    // PyTorch prototype); 1e-4 holds. Log-rates move on their own, much larger, scale.
    outer_lr: 1e-4,
    outer_lr_rates: 1e-2,
    // The weighting model reads the frozen base's hidden states and is learned at 3e-3. Reading
    // the adapted model (the paper's form) it collapsed within 100–250 outer steps at every rate
    // tried and, learned on 256-token contexts, stopped PERK reading 1K ones; reading the base
    // it learns stably to weight the facts' rooms — the PyTorch prototype's QA1 at 256 tokens,
    // validation 41 → 73% in 300 steps (pipeline/perk/README.md, "The weighting model").
    outer_lr_weighting: 3e-3,
    weighting_input: "base",
    // A decaying schedule stalls the learned rates and PERK collapses onto one answer
    // (pipeline/perk/README.md: the prototype at 150 steps, constant 38%, cosine 20%).
    outer_schedule: "constant",
    target: "answer",
    // The regime found in the PyTorch prototype (bench/torch_perk.py): one retained step of
    // four (a third of the T = 2 meta-step's cost) and no LoRA dropout.
    truncate: 3,
    lora_dropout: 0,
    epochs: 1,
    max_new_tokens: 96,
    ft_lr: 1e-3,
  },
  paper: {
    ...shared,
    model: "qwen2.5-0.5b",
    train_lengths: ["8k"],
    test_lengths: ["8k"],
    // Problem counts are our choice (the paper does not give them all).
    n_train: 2000,
    n_validation: 100,
    n_test: 500,
    rank: 256,
    inner_lr: 5e-5,
    outer_lr: 1e-5,
    outer_lr_rates: 1e-5,
    outer_lr_weighting: 1e-5,
    target: "support_answer",
    epochs: 2,
    max_new_tokens: 512,
    ft_lr: 1e-5,
  },
};

/** Rules between keys, checked on every sweep point (a silent clamp would hide the mistake). */
export const CONSTRAINTS: readonly Constraint[] = [
  (c) =>
    typeof c.truncate === "number" && typeof c.steps === "number" && c.truncate > c.steps
      ? `truncate = ${c.truncate} detaches more inner steps than steps = ${c.steps} takes; ` +
        `set truncate ≤ ${c.steps} (truncate = steps is first-order meta-learning)`
      : undefined,
];

/**
 * The cpu profile's short meta-training, for experiments whose cells cost more per outer step
 * (longer training contexts, several cells): 150 steps, one per problem, at the larger outer
 * rates that made PERK learn QA1 in 60–150 steps (pipeline/perk/README.md: 3e-4 / 3e-2 → 37–40%
 * against 1e-4 / 1e-2 → 30% at 60 steps in the prototype; 40% in perk's learning test).
 */
export const SHORT_META: Config = { n_train: 150, outer_lr: 3e-4, outer_lr_rates: 3e-2 };
