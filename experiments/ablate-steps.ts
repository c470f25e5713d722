/** Inner-step ablation on BabiLong QA1–QA3 at 1K (paper Table 3: N = 2 vs 4). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "ablate-steps",
  title: "Ablation: inner steps N (QA1–QA3, 1K)",
  description: "PERK with 2 and 4 inner gradient steps (paper Table 3).",
  overrides: {
    all: {
      methods: ["perk"],
      test_lengths: ["1k"],
      // Keep every step differentiated so N is the only change.
      truncate: 0,
    },
    // QA1 only (the task PERK learns at this scale); N = 4 fully unrolled is the dearest
    // meta-step (~5 s at 256 tokens): ~55 min for both points on the reference host.
    cpu: { tasks: ["qa1"] },
    paper: { tasks: ["qa1", "qa2", "qa3"], train_lengths: ["1k"] },
  },
  note: "The cpu profile ablates on QA1 with 256-token training contexts.",
  sweep: { all: { steps: [2, 4] } },
});
