/** Length generalisation: train at one length, test at others (paper Figure 4 heatmap). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "length-generalisation",
  title: "Length generalisation: accuracy by train × test length (QA1)",
  description: "PERK and FT-ICR trained at each train length, tested at each test length.",
  overrides: {
    all: { tasks: ["qa1"], methods: ["perk", "ft-icr"] },
    // FT-ICR reads the whole context: prompts beyond the base's positions (4096 for the tiny
    // base, 32768 for Qwen2.5) need scaled RoPE; YaRN leaves shorter prompts as they were.
    // Two training lengths × three test lengths, 50 tests a cell; the 1K training is 150
    // steps at the larger outer rates (~75 min on the reference host).
    cpu: {
      train_lengths: ["256", "1k"],
      test_lengths: ["1k", "2k", "4k"],
      ...SHORT_META,
      n_test: 50,
      rope_scaling: "yarn:4",
    },
    paper: {
      train_lengths: ["1k", "2k", "4k", "8k"],
      test_lengths: ["1k", "2k", "4k", "8k", "16k", "32k"],
      rope_scaling: "yarn:2",
    },
  },
  note: "The cpu profile trains at 256 and 1K tokens, tests up to 4K with 50 problems per " +
    "cell: read the intervals.",
});
