/**
 * BabiLong QA1 at 8K: PERK vs FT-ICR (paper Table 5 trains on 8K and tests on 8K and 32K).
 * The cpu profile trains on 256-token contexts and tests on 8K — the table's train column says so.
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "babilong-qa1-8k",
  title: "BabiLong QA1, 8K test contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA1, long test contexts (paper Table 5).",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr", "perk-no-encode", "context-mode"] },
    // FT-ICR reads the whole context: 8K prompts (~9.9K tiny-vocabulary tokens) exceed the tiny
    // base's 4096 positions and 32K ones Qwen2.5's 32768, so RoPE is scaled (YaRN) for them.
    // The cpu defaults' training (300 steps on 256 tokens); 40 tests at 8K (24 s each here).
    cpu: { test_lengths: ["8k"], n_test: 40, rope_scaling: "yarn:4" },
    paper: { train_lengths: ["8k"], test_lengths: ["8k", "32k"], rope_scaling: "yarn:2" },
  },
  note: "With the cpu profile the training contexts are 256 tokens (train column); tests are 8K.",
});
