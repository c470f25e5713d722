/** BabiLong QA1 at 1K: PERK vs FT-ICR, trained and tested on 1K contexts (paper Table 2). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "babilong-qa1-1k",
  title: "BabiLong QA1, 1K contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA1 (paper Table 2, Qwen2.5-0.5B row).",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr", "perk-no-encode"], test_lengths: ["1k"] },
    // The cpu defaults: 300 outer steps on 256-token contexts, 200 tests at 1K (~25 min).
    paper: { train_lengths: ["1k"] },
  },
  note: "With the cpu profile the training contexts are 256 tokens (train column); tests are 1K.",
});
