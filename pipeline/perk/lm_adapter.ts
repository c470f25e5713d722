/** PERK's view of a GpuModel: hidden states and logits with LoRA tensors in layout order. */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { gpuLora, type GpuModel } from "../model/gpu_model.ts";
import type { ParamSpec } from "../model/lora.ts";
import type { PerkLM } from "./objectives.ts";

export function perkLM(
  model: GpuModel,
  specs: readonly ParamSpec[],
  scale: number,
  dropout: number,
): PerkLM {
  return {
    rt: model.rt,
    dim: model.config.dim,
    vocab: model.config.vocab,
    forward(batch, lora: readonly Tensor[], o = {}) {
      const r = model.forward(batch.ids, {
        batch: batch.rows,
        lora: gpuLora(specs, [...lora], scale, dropout),
        dropoutSeed: o.dropoutSeed,
        logits: "all",
      });
      return { hidden: r.hidden, logits: r.logits! };
    },
    baseHidden(batch) {
      return model.forward(batch.ids, { batch: batch.rows, logits: "none" }).hidden;
    },
  };
}
