/** Positional bias: facts at the start, middle, end or anywhere (paper Figure 5). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "positional-bias",
  title: "Positional bias: accuracy by train × test fact position (QA1)",
  description: "Trained with facts in one part of the context, tested with them in each part.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr"] },
    // Four meta-trainings of 150 steps (256 tokens, the larger outer rates) and 16 test cells
    // of 40 problems at 1K (~65 min on the reference host).
    cpu: { ...SHORT_META, test_lengths: ["1k"], n_test: 40 },
    paper: { train_lengths: ["8k"], test_lengths: ["8k"] },
  },
  sweep: {
    all: {
      train_position: ["pre", "mid", "post", "rnd"],
      test_position: ["pre", "mid", "post", "rnd"],
    },
  },
  note: "The cpu profile uses 40 test problems per cell: read the intervals.",
});
