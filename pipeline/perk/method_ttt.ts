/**
 * Control `perk-ttt`: test-time training without meta-training — PEFT's LoRA init, the
 * constant inner rate `inner_lr` and the initial weighting model, N inner steps on the test
 * context, then the answer. What PERK scores above this is what meta-learning adds.
 */
import type { Gpu } from "../../kernels/runtime/gpu.ts";
import type { Method } from "../experiment/methods.ts";
import { answerNode, initNode, PerkMethodParams } from "./method.ts";

export const method: Method<PerkMethodParams, Gpu> = {
  name: "perk-ttt",
  description: "control: test-time training from the untrained init at a constant inner rate",
  params: PerkMethodParams,
  predictions: (cell, p) => answerNode(cell, p, initNode(p), p.steps),
};
