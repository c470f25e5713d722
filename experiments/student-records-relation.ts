/** Student Records ("drops in the ocean"), relation questions: PERK vs FT-ICR. */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { SHORT_META } from "./defaults.ts";

export default defineExperiment({
  name: "student-records-relation",
  title: "Student Records, relation: PERK vs FT-ICR",
  description: "Reasoning over many small records (one per document), relation questions.",
  overrides: {
    all: {
      dataset: "student-records",
      tasks: ["relation"],
      methods: ["perk", "ft-icr"],
      // Student Records answers are the answer alone (no <support> block).
      metric: "perk-em",
    },
    // Records are whole documents of ~40 tokens: 1K contexts, 150 outer steps at the larger
    // outer rates, 200 tests (~35 min on the reference host).
    cpu: { ...SHORT_META, train_lengths: ["1k"], test_lengths: ["1k"] },
    // Lengths are our choice for the paper profile (records contexts of a few thousand tokens).
    paper: { train_lengths: ["4k"], test_lengths: ["4k"] },
  },
});
