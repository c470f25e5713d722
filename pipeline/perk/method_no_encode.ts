/**
 * Control `perk-no-encode`: PERK's own meta-training (the same node, so it is trained once),
 * then answers from the meta-learned initial adapter θ₀ alone — the inner loop removed. What
 * PERK scores above this comes from reading the test context, not from answer priors that
 * meta-training baked into θ₀.
 */
import type { Gpu } from "../../kernels/runtime/gpu.ts";
import type { Method } from "../experiment/methods.ts";
import { answerNode, metaNode, PerkMethodParams } from "./method.ts";

export const method: Method<PerkMethodParams, Gpu> = {
  name: "perk-no-encode",
  description: "control: PERK's meta-trained initial adapter answering without the inner loop",
  params: PerkMethodParams,
  predictions: (cell, p) => answerNode(cell, p, metaNode(cell, p), 0),
};
