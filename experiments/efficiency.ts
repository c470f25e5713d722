/**
 * Inference cost: time and peak GPU memory per problem versus context length and gradient
 * accumulation steps (paper Figure 6 / §5.3).
 */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "efficiency",
  title: "Efficiency: time and memory vs context length and accumulation",
  description: "PERK encoding + answering cost per problem.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk"] },
    // Cost, not accuracy: a short meta-training (60 steps) and 8 problems per cell (~20 min).
    cpu: { test_lengths: ["1k", "2k", "4k", "8k"], n_train: 60, n_test: 8 },
    paper: { train_lengths: ["8k"], test_lengths: ["8k", "32k", "64k", "128k"], n_test: 20 },
  },
  sweep: { cpu: { accumulation: [1, 4] }, paper: { accumulation: [1, 2, 4, 8, 16] } },
  note: "Few test problems per cell: this experiment measures cost, not accuracy.",
});
