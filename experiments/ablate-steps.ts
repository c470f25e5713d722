/** Inner-step ablation on BabiLong QA1–QA3 at 1K (paper Table 3: N = 2 vs 4). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "ablate-steps",
  title: "Ablation: inner steps N (QA1–QA3, 1K)",
  description: "PERK with 2 and 4 inner gradient steps (paper Table 3).",
  overrides: {
    all: {
      tasks: ["qa1", "qa2", "qa3"],
      methods: ["perk"],
      train_lengths: ["1k"],
      test_lengths: ["1k"],
      // Keep every step differentiated so N is the only change.
      truncate: 0,
    },
  },
  sweep: { all: { steps: [2, 4] } },
});
