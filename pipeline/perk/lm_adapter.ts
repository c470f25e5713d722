/** PERK's view of a GpuModel: hidden states and logits with LoRA tensors in layout order. */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { gpuLora, type GpuModel } from "../model/gpu_model.ts";
import type { ParamSpec } from "../model/lora.ts";
import type { PerkLM } from "./objectives.ts";

/**
 * `headRows`: rows per head + cross-entropy chunk (default: as many as one bindable buffer
 * holds — one chunk for the tiny vocabularies; tests force several).
 */
export function perkLM(
  model: GpuModel,
  specs: readonly ParamSpec[],
  scale: number,
  dropout: number,
  headRows?: number,
): PerkLM {
  return {
    rt: model.rt,
    dim: model.config.dim,
    vocab: model.config.vocab,
    nll(batch, targets, lora: readonly Tensor[], o = {}) {
      return model.nll(batch.ids, {
        batch: batch.rows,
        targets,
        lora: gpuLora(specs, [...lora], scale, dropout),
        dropoutSeed: o.dropoutSeed,
        headRows,
      });
    },
    baseHidden(batch) {
      return model.forward(batch.ids, { batch: batch.rows, logits: "none" }).hidden;
    },
  };
}
