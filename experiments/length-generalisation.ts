/** Length generalisation: train at one length, test at others (paper Figure 4 heatmap). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "length-generalisation",
  title: "Length generalisation: accuracy by train × test length (QA1)",
  description: "PERK and FT-ICR trained at each train length, tested at each test length.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr"] },
    cpu: { train_lengths: ["1k", "2k"], test_lengths: ["1k", "2k", "4k", "8k"], n_test: 50 },
    paper: {
      train_lengths: ["1k", "2k", "4k", "8k"],
      test_lengths: ["1k", "2k", "4k", "8k", "16k", "32k"],
    },
  },
  note: "The cpu profile uses 50 test problems per cell: read the intervals.",
});
