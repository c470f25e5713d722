/** Positional bias: facts at the start, middle, end or anywhere (paper Figure 5). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "positional-bias",
  title: "Positional bias: accuracy by train × test fact position (QA1)",
  description: "Trained with facts in one part of the context, tested with them in each part.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr"] },
    cpu: { train_lengths: ["1k"], test_lengths: ["2k"], n_test: 50 },
    paper: { train_lengths: ["8k"], test_lengths: ["8k"] },
  },
  sweep: {
    all: {
      train_position: ["pre", "mid", "post", "rnd"],
      test_position: ["pre", "mid", "post", "rnd"],
    },
  },
  note: "The cpu profile uses 50 test problems per cell: read the intervals.",
});
