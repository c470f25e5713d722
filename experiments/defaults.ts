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
import { type Config, field, type Profile } from "../pipeline/experiment/config.ts";
import { coreFields } from "../pipeline/experiment/fields.ts";
import { METHOD_NAMES } from "./methods.ts";

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
  inner_lr: positive("initial learned inner learning rate (one per LoRA tensor per step)"),
  outer_lr: positive("meta-training AdamW learning rate"),
  epochs: int(1, "meta-training / fine-tuning epochs (upper bound with early stopping)"),
  patience: int(1, "early-stopping patience in validation checks"),
  accumulation: int(1, "gradient accumulation groups over the context's segments at inference"),
  max_new_tokens: int(1, "greedy decoding budget per answer"),
  ft_lr: positive("FT-ICR fine-tuning learning rate"),
  base_profile: field(
    Schema.Literals(["tiny", "cpu", "micro"]),
    '"tiny", "cpu" or "micro"',
    'size of the base pretrained here when model = "tiny" (pipeline/model/pretrain.ts)',
  ),
  base_steps: int(1, 'pretraining steps of the base when model = "tiny"'),
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
  inner_lr: 5e-5,
  patience: 10,
  base_profile: "cpu",
  base_steps: 100,
  ft_full: false,
  ft_batch: 1,
  rope_scaling: "none",
  accumulation: 1,
};

export const DEFAULTS: Readonly<Record<Profile, Config>> = {
  cpu: {
    ...shared,
    model: "tiny",
    train_lengths: ["1k"],
    test_lengths: ["1k"],
    n_train: 512,
    n_validation: 32,
    n_test: 200,
    rank: 16,
    // The tiny base learns faster than Qwen at the paper's 1e-5.
    outer_lr: 1e-3,
    epochs: 2,
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
    outer_lr: 1e-5,
    epochs: 2,
    max_new_tokens: 512,
    ft_lr: 1e-5,
  },
};
