/** BabiLong QA3 at 1K: PERK vs FT-ICR, trained and tested on 1K contexts (paper Table 2). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "babilong-qa3-1k",
  title: "BabiLong QA3, 1K contexts: PERK vs FT-ICR",
  description: "Needles in a haystack, QA3 (paper Table 2, Qwen2.5-0.5B row).",
  overrides: {
    all: {
      tasks: ["qa3"],
      methods: ["perk", "ft-icr"],
      train_lengths: ["1k"],
      test_lengths: ["1k"],
    },
  },
});
