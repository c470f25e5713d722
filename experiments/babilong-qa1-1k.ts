/** BabiLong QA1 at 1K: PERK vs FT-ICR, trained and tested on 1K contexts (paper Table 2). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "babilong-qa1-1k",
  title: "BabiLong QA1, 1K contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA1 (paper Table 2, Qwen2.5-0.5B row).",
  overrides: {
    all: {
      tasks: ["qa1"],
      methods: ["perk", "ft-icr"],
      train_lengths: ["1k"],
      test_lengths: ["1k"],
    },
  },
});
