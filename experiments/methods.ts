/**
 * The methods experiments may compare, and where each implementation lives. A method is
 * registered by creating its module (exporting `method`, see pipeline/experiment/methods.ts);
 * the experiment runner imports it at run time, so until it exists the method is reported
 * as "not available yet" — with the stages it will run, listed here.
 */
import type { MethodSource } from "../pipeline/experiment/methods.ts";

export const METHOD_SOURCES: readonly MethodSource[] = [
  {
    name: "perk",
    description: "PERK: meta-learned test-time LoRA encoding of the context, then answering",
    module: "pipeline/perk/method.ts",
    outline: [
      { stage: "base-fixture | pretrain-base | base-path", per: "model", keys: ["model", "base"] },
      {
        stage: "perk-meta-train",
        per: "task × train length",
        keys: [
          "model",
          "rank",
          "lora_alpha",
          "steps",
          "truncate",
          "inner_lr",
          "lr_param",
          "outer_schedule",
          "outer_lr",
          "outer_lr_rates",
          "outer_lr_weighting",
          "target",
          "lora_dropout",
          "epochs",
          "patience",
          "seed",
        ],
      },
      {
        stage: "perk-answer",
        per: "test problem (encode, then answer)",
        keys: ["rank", "steps", "accumulation", "max_new_tokens"],
      },
    ],
  },
  {
    name: "perk-no-encode",
    description: "control: PERK's meta-trained initial adapter answering without the inner loop",
    module: "pipeline/perk/method_no_encode.ts",
    outline: [
      { stage: "perk-meta-train", per: "task × train length (shared with perk)", keys: [] },
      { stage: "perk-answer", per: "test problem, no inner steps", keys: ["max_new_tokens"] },
    ],
  },
  {
    name: "perk-ttt",
    description: "control: test-time training from the untrained init at a constant inner rate",
    module: "pipeline/perk/method_ttt.ts",
    outline: [
      { stage: "perk-init", per: "model", keys: ["rank", "steps", "inner_lr"] },
      { stage: "perk-answer", per: "test problem", keys: ["steps", "max_new_tokens"] },
    ],
  },
  {
    name: "ft-icr",
    description:
      "FT-ICR baseline: the base model fine-tuned to answer with the context in its prompt",
    module: "pipeline/baselines/ft_icr/method.ts",
    outline: [
      { stage: "base-fixture | pretrain-base | base-path", per: "model", keys: ["model", "base"] },
      {
        stage: "ft-icr-train",
        per: "task × train length",
        keys: ["model", "rank", "lora_alpha", "ft_lr", "epochs", "patience", "seed"],
      },
      {
        stage: "ft-icr-eval",
        per: "test problem (batched per test set)",
        keys: ["max_new_tokens"],
      },
    ],
  },
  {
    name: "prompt-only",
    description: "the base model answering with the context in its prompt, no training",
    module: "pipeline/baselines/prompt_only/method.ts",
    outline: [
      { stage: "base-fixture | pretrain-base | base-path", per: "model", keys: ["model", "base"] },
      {
        stage: "prompt-eval",
        per: "test problem (batched per test set)",
        keys: ["max_new_tokens"],
      },
    ],
  },
];

export const METHOD_NAMES: readonly string[] = METHOD_SOURCES.map((s) => s.name);
