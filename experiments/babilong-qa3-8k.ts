/**
 * BabiLong QA3 at 8K: PERK vs FT-ICR (paper Table 5 trains on 8K and tests on 8K and 32K).
 * The cpu profile trains on 512-token contexts and tests on 8K — the table's train column says so.
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "babilong-qa3-8k",
  title: "BabiLong QA3, 8K test contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA3, long test contexts (paper Table 5).",
  overrides: {
    all: { tasks: ["qa3"], methods: ["perk", "ft-icr", "perk-no-encode", "context-mode"] },
    // FT-ICR reads the whole context: 8K prompts (~9.9K tiny-vocabulary tokens) exceed the tiny
    // base's 4096 positions and 32K ones Qwen2.5's 32768, so RoPE is scaled (YaRN) for them.
    // As the main job (babilong-qa2-8k): 150 steps on 512 tokens, 40 tests at 8K.
    cpu: {
      ...SHORT_META,
      train_lengths: ["512"],
      test_lengths: ["8k"],
      n_test: 40,
      rope_scaling: "yarn:4",
    },
    paper: { train_lengths: ["8k"], test_lengths: ["8k", "32k"], rope_scaling: "yarn:2" },
  },
  note: "With the cpu profile the training contexts are 512 tokens (train column); tests are 8K.",
});
