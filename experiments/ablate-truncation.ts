/**
 * Truncated gradient unrolling on BabiLong QA1 at 1K, N = 4 (paper Table 4: detaching 0–3
 * leading steps keeps accuracy; all 4 = first order) and meta-training memory vs truncation
 * (paper Figure 8).
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "ablate-truncation",
  title: "Ablation: truncated gradient unrolling (QA1, 1K, N = 4)",
  description: "Accuracy and meta-training memory per number of detached inner steps.",
  overrides: {
    all: {
      tasks: ["qa1"],
      methods: ["perk"],
      train_lengths: ["1k"],
      test_lengths: ["1k"],
      steps: 4,
    },
  },
  sweep: { all: { truncate: [0, 1, 2, 3, 4] } },
});
