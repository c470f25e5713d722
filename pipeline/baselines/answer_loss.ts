/**
 * FT-ICR's training loss: mean NLL of the answer tokens after the in-context prompt, over a
 * batch of problems (right padded; causal attention never looks at the padding). It equals
 * GpuModel.loss with every target −1 except the answers' (tested), but the output head runs
 * on the answer rows only: with the full head, an 8K-token prompt over Qwen's 152K
 * vocabulary would make a 5 GB logits matrix (and as much again for its gradient) of which
 * a dozen rows are scored.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { concat, matmul, scale, slice, sumAll } from "../../kernels/autodiff/basic.ts";
import { crossEntropyRows } from "../../kernels/autodiff/nn.ts";
import type { GpuLora, GpuModel } from "../model/gpu_model.ts";
import { frozenLinear, holdWith } from "../../kernels/autodiff/model_ops.ts";
import type { IcrExample } from "./in_context.ts";

export interface AnswerLossOptions {
  readonly lora?: GpuLora;
  /** Base weights being trained (full fine-tuning), by canonical name. */
  readonly weights?: ReadonlyMap<string, Tensor>;
  /** Enables LoRA dropout with masks from this seed (training). */
  readonly dropoutSeed?: number;
}

/** A right-padded batch: ids (B·T), the flat rows that predict answer tokens, and those tokens. */
export interface AnswerBatch {
  readonly rows: number;
  readonly len: number;
  readonly ids: Int32Array;
  /** Per row: the flat index b·T + t of its first answer-predicting position, and count. */
  readonly spans: readonly (readonly [number, number])[];
  /** The answer tokens those positions predict. */
  readonly targets: Int32Array;
}

/** Each row: prompt ⧺ answer without its last token (which predicts nothing), then 0s. */
export function answerBatch(exs: readonly IcrExample[]): AnswerBatch {
  for (const ex of exs) {
    if (ex.prompt.length === 0 || ex.answer.length === 0) {
      throw new RangeError(`problem ${ex.id}: the prompt and the answer need at least one token`);
    }
  }
  const longest = Math.max(...exs.map((e) => e.prompt.length + e.answer.length - 1));
  // Rows padded to a multiple of 16: the attention matmuls' inner size is the row length,
  // and the fast matmul kernels need it aligned (lavapipe's fallback is ~50× slower).
  const B = exs.length, T = Math.ceil(longest / 16) * 16;
  const ids = new Int32Array(B * T);
  const spans: [number, number][] = [], targets: number[] = [];
  exs.forEach((ex, b) => {
    const P = ex.prompt.length, A = ex.answer.length;
    ids.set(ex.prompt, b * T);
    ids.set(ex.answer.subarray(0, A - 1), b * T + P);
    spans.push([b * T + P - 1, A]);
    targets.push(...ex.answer);
  });
  return {
    rows: B,
    len: T,
    ids,
    spans,
    targets: Int32Array.from(targets),
  };
}

/** Mean answer-token NLL of a batch (scalar [1]), differentiable w.r.t. `lora` / `weights`. */
export function answerLoss(
  model: GpuModel,
  batch: AnswerBatch,
  o: AnswerLossOptions = {},
): Tensor {
  const rt = model.rt, c = model.config;
  const { hidden } = model.forward(batch.ids, {
    batch: batch.rows,
    lora: o.lora,
    weights: o.weights,
    dropoutSeed: o.dropoutSeed,
    logits: "none",
  }); // (B·T, C)
  const parts = batch.spans.map(([start, n]) => slice(hidden, 0, start, n));
  const h = parts.length === 1 ? parts[0] : concat(parts, 0); // (N_answer, C)
  const name = c.tiedEmbeddings ? "embed" : "lm_head.weight";
  const trained = o.weights?.get(name);
  // Tied: logits = h·embedᵀ (embed is (V, C)); an untied lm_head is stored (C, V).
  const logits = trained
    ? matmul(h, trained, { transB: c.tiedEmbeddings })
    : frozenLinear(h, model.weights.get(name)!, undefined, c.tiedEmbeddings); // (N_answer, V)
  const targets = rt.tensor(batch.targets, [batch.targets.length], "i32");
  // The cross-entropy's backward reads the targets after this call has returned.
  const nll = crossEntropyRows(holdWith(logits, [targets]), targets);
  return scale(sumAll(nll), 1 / batch.targets.length);
}
