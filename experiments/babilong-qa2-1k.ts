/** BabiLong QA2 at 1K: PERK vs FT-ICR, trained and tested on 1K contexts (paper Table 2). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "babilong-qa2-1k",
  title: "BabiLong QA2, 1K contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA2 (paper Table 2, Qwen2.5-0.5B row).",
  overrides: {
    all: { tasks: ["qa2"], methods: ["perk", "ft-icr", "perk-no-encode"], test_lengths: ["1k"] },
    // As the main job (babilong-qa2-8k): 150 outer steps on 512-token contexts at the larger
    // outer rates, 200 tests at 1K (~35 min on the reference host).
    cpu: { ...SHORT_META, train_lengths: ["512"] },
    paper: { train_lengths: ["1k"] },
  },
  note: "With the cpu profile the training contexts are 512 tokens (train column); tests are 1K.",
});
