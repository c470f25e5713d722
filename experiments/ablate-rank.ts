/** LoRA rank ablation on BabiLong QA1–QA3 at 1K (paper Table 2: rank 16 vs 256). */
import { defineExperiment } from "../pipeline/experiment/experiment.ts";

export default defineExperiment({
  name: "ablate-rank",
  title: "Ablation: LoRA rank (QA1–QA3, 1K)",
  description: "PERK with two LoRA ranks; one table per swept parameter (paper Table 2).",
  overrides: {
    all: { methods: ["perk"], test_lengths: ["1k"] },
    // QA1 only: the task PERK learns at this scale (pipeline/perk/README.md); the cpu
    // defaults' 300 steps on 256 tokens, 200 tests at 1K per rank (~40 min).
    cpu: { tasks: ["qa1"] },
    paper: { tasks: ["qa1", "qa2", "qa3"], train_lengths: ["1k"] },
  },
  sweep: { cpu: { rank: [4, 16] }, paper: { rank: [16, 256] } },
  note: "The cpu profile sweeps ranks 4 and 16 (the tiny base's width caps useful ranks) on " +
    "QA1 with 256-token training contexts.",
});
