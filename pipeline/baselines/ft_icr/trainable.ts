/**
 * What FT-ICR trains: a LoRA adapter over the frozen base (PERK's layout and rank, for a
 * like-for-like comparison) or every base weight (full fine-tuning). Either way it is a list
 * of named tensors with initial values, whether AdamW decays each, and how they enter the
 * model's forward.
 */
import type { Tensor } from "../../../kernels/runtime/tensor.ts";
import { gpuLora } from "../../model/gpu_model.ts";
import { defaultLoraConfig, initLora, type LoraParams } from "../../model/lora.ts";
import type { Model } from "../../model/weights.ts";
import type { AnswerLossOptions } from "../answer_loss.ts";

export interface LoraChoice {
  readonly kind: "lora";
  readonly rank: number;
  readonly alpha: number;
  /** Dropout on the LoRA input while training (PERK: 0.1). */
  readonly dropout: number;
  readonly seed: number;
}
export interface FullChoice {
  readonly kind: "full";
}
export type TrainChoice = LoraChoice | FullChoice;

export interface Trainable {
  readonly kind: "lora" | "full";
  readonly names: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  /** Weight decay applies (matrices and LoRA factors; not norms, biases). */
  readonly decay: readonly boolean[];
  /** Initial values (host), in `names` order. */
  readonly init: readonly Float32Array[];
  /** The forward options that make `tensors` (in `names` order) the trained ones. */
  options(tensors: readonly Tensor[], train: boolean): AnswerLossOptions;
  /** LoRA layout (kind "lora"), for rebuilding the adapter from trained values. */
  readonly lora?: LoraParams;
}

/** PERK's LoRA settings (rank-stabilised scaling, every linear) with FT-ICR's rank/alpha. */
export function loraFor(base: Model, c: LoraChoice): LoraParams {
  return initLora(
    base.config,
    defaultLoraConfig(base.config, {
      rank: c.rank,
      alpha: c.alpha,
      rsLora: true,
      dropout: c.dropout,
      seed: c.seed,
    }),
  );
}

export function trainable(base: Model, choice: TrainChoice): Trainable {
  if (choice.kind === "lora") {
    const lora = loraFor(base, choice);
    return {
      kind: "lora",
      names: lora.specs.map((s) => s.name),
      shapes: lora.specs.map((s) => [...s.shape]),
      decay: lora.specs.map(() => true),
      init: lora.specs.map((s) => lora.data.slice(s.offset, s.offset + s.size)),
      options: (ts, train) => ({
        lora: gpuLora(lora.specs, [...ts], lora.scale, train ? choice.dropout : 0),
      }),
      lora,
    };
  }
  const names = [...base.weights.keys()];
  const ws = names.map((n) => base.weights.get(n)!);
  return {
    kind: "full",
    names,
    shapes: ws.map((w) => [...w.shape]),
    decay: ws.map((w) => w.shape.length === 2),
    init: ws.map((w) => w.data.slice()),
    options: (ts) => ({ weights: new Map(names.map((n, i) => [n, ts[i]])) }),
  };
}
