/**
 * BabiLong QA2 at 8K: PERK vs FT-ICR (paper Table 5 trains on 8K and tests on 8K and 32K).
 * The cpu profile trains on 1K contexts and tests on 8K — the table's train column says so.
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "babilong-qa2-8k",
  title: "BabiLong QA2, 8K test contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA2, long test contexts (paper Table 5).",
  overrides: {
    all: { tasks: ["qa2"], methods: ["perk", "ft-icr"] },
    // Sized for a 2-core CPU adapter: one tiny-model meta-step on 1K tokens costs tens of
    // seconds and an 8K answer minutes on lavapipe, so fewer problems (the CI column says how
    // wide the interval is).
    cpu: {
      train_lengths: ["1k"],
      test_lengths: ["8k"],
      n_train: 64,
      n_validation: 8,
      n_test: 20,
      epochs: 1,
      // FT-ICR reads the whole context: 8K prompts (~9.9K tiny-vocabulary tokens) exceed the
      // tiny base's 4096 positions, so RoPE is scaled (YaRN ×4 covers 16K).
      rope_scaling: "yarn:4",
    },
    // 32K prompts exceed Qwen2.5's 32768 positions.
    paper: { train_lengths: ["8k"], test_lengths: ["8k", "32k"], rope_scaling: "yarn:2" },
  },
  note: "With the cpu profile the training contexts are 1K (train column); tests are 8K.",
});
