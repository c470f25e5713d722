/**
 * Truncated gradient unrolling on BabiLong QA1 at 1K, N = 4 (paper Table 4: detaching 0–3
 * leading steps keeps accuracy; all 4 = first order) and meta-training memory vs truncation
 * (paper Figure 8).
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "ablate-truncation",
  title: "Ablation: truncated gradient unrolling (QA1, 1K, N = 4)",
  description: "Accuracy and meta-training memory per number of detached inner steps.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk"], test_lengths: ["1k"], steps: 4 },
    // Five meta-trainings: 200 outer steps each at the larger outer rates, 100 tests at 1K
    // (~75 min on the reference host; T = 4 alone is ~17 min of it).
    cpu: { ...SHORT_META, n_train: 200, n_test: 100 },
    paper: { train_lengths: ["1k"] },
  },
  note: "The cpu profile trains on 256-token contexts, 200 outer steps per point.",
  sweep: { all: { truncate: [0, 1, 2, 3, 4] } },
});
