/**
 * The decoder on the GPU, written with the differentiable core so grad / hvp flow through it:
 * gpt2 (LayerNorm, learned positions, GELU-tanh, biases, tied head), qwen2 (RMSNorm, RoPE,
 * SwiGLU, GQA, q/k/v biases) and llama, over the canonical weight layout (README.md).
 *
 * Base weights are uploaded once as frozen f32 tensors owned by the model (outside every
 * scope) and enter the graph through `frozenLinear`, so a backward pass computes no gradient
 * for them; pass `weights` (tensors being differentiated) to train them instead (pretraining).
 * LoRA tensors (A (in, r), B (r, out), y += scale·(dropout(x)·A)·B) come from the caller.
 *
 * Batches are (B, T) token rows. Right padding needs nothing (causal attention never looks
 * ahead; mask the targets); left padding (`leftPad`, as batched generation uses) masks the
 * pad keys and starts each row's positions at its first real token.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { add, concat, mul, reshape, scale, slice, sumAll } from "../../kernels/autodiff/basic.ts";
import { crossEntropyRows } from "../../kernels/autodiff/nn.ts";
import { embedding, holdWith, sliceI32 } from "../../kernels/autodiff/model_ops.ts";
import { type AttentionOptions, attentionPlan } from "./attention_plan.ts";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { block, type CallAttention, CallWeights, type GpuLora, head } from "./gpu_block.ts";
import type { LoraParams } from "./lora.ts";
import { ropeTables } from "./rope.ts";
import { type Model, validateWeights } from "./weights.ts";

export { GpuKvCache } from "./attention_plan.ts";
export type { GpuLora } from "./gpu_block.ts";

/** A GpuLora over tensors given in the flat layout's order (lora.ts `specs`). */
export function gpuLora(
  specs: readonly { readonly name: string }[],
  tensors: readonly Tensor[],
  scale: number,
  dropout = 0,
): GpuLora {
  if (specs.length !== tensors.length) {
    throw new ModelError(`gpuLora: ${tensors.length} tensors for a layout of ${specs.length}`);
  }
  return { scale, dropout, tensors: new Map(specs.map((s, i) => [s.name, tensors[i]])) };
}

/** Upload a LoRA adapter: one tensor per spec, in layout order, owned by the caller. */
export function uploadLora(rt: Runtime, p: LoraParams): Tensor[] {
  return p.specs.map((s) =>
    rt.keep(rt.tensor(p.data.subarray(s.offset, s.offset + s.size), [...s.shape]))
  );
}

/** One forward call's options; those deciding attention (batch, cache …): attention_plan.ts. */
export interface GpuForwardOptions extends AttentionOptions {
  readonly lora?: GpuLora;
  /** Base weights being differentiated (canonical names): they replace the frozen ones. */
  readonly weights?: ReadonlyMap<string, Tensor>;
  /** Enables LoRA dropout (lora.dropout) with masks derived from this seed. */
  readonly dropoutSeed?: number;
  /** "all" (B·T, V), "last" (B, V): each row's last position, or "none". Default "all". */
  readonly logits?: "all" | "last" | "none";
}

export interface GpuForwardResult {
  /** (B·T, V), (B, V) with logits "last", undefined with "none". */
  readonly logits: Tensor | undefined;
  /** (B·T, C): the last layer's output after the final norm. */
  readonly hidden: Tensor;
}

export interface GpuLossOptions extends GpuForwardOptions {
  /** (B·T) next-token targets, −1 = no loss. Default: each row's next token (last: −1). */
  readonly targets?: Int32Array | Tensor;
  /** Per-token weights (B·T): host values, a tensor, or a function of the hidden states. */
  readonly tokenWeights?: Float32Array | Tensor | ((hidden: Tensor) => Tensor);
  /** Σ w·NLL is divided by this (default B·(T−1): PERK averages over all positions). */
  readonly denominator?: number;
  /** Rows per head + cross-entropy chunk (default: as many as one bindable buffer holds). */
  readonly headRows?: number;
}

export class GpuModel {
  readonly weights: ReadonlyMap<string, Tensor>;
  #rope: { cos: Tensor; sin: Tensor; n: number } | undefined;
  #disposed = false;

  private constructor(
    readonly rt: Runtime,
    readonly config: ModelConfig,
    weights: Map<string, Tensor>,
  ) {
    this.weights = weights;
  }

  /** Upload a model's weights (validated first); the GpuModel owns the GPU copies. */
  static upload(rt: Runtime, model: Model): GpuModel {
    validateWeights(model.config, model.weights, "GpuModel.upload");
    const w = new Map<string, Tensor>();
    for (const [name, t] of model.weights) w.set(name, rt.keep(rt.tensor(t.data, t.shape)));
    return new GpuModel(rt, model.config, w);
  }

  /** The frozen weights in canonical order (e.g. to start pretraining from them). */
  get names(): string[] {
    return [...this.weights.keys()];
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.weights.values()) t.dispose();
    this.#rope?.cos.dispose();
    this.#rope?.sin.dispose();
    this.#rope = undefined;
  }

  /** cos/sin tables (P, hd/2) covering positions < n (grown by doubling). */
  #ropeTables(n: number): { cos: Tensor; sin: Tensor } {
    if (this.#rope && this.#rope.n >= n) return this.#rope;
    const c = this.config;
    const cap = Math.min(c.maxPositions, Math.max(n, 256, 2 * (this.#rope?.n ?? 0)));
    const { cos, sin } = ropeTables(c, cap);
    const half = c.headDim / 2;
    // Old tables may still be held by a recorded tape (qkvHeads takes them as inputs).
    this.#rope?.cos.dispose();
    this.#rope?.sin.dispose();
    this.#rope = {
      cos: this.rt.keep(this.rt.tensor(Float32Array.from(cos), [cap, half])),
      sin: this.rt.keep(this.rt.tensor(Float32Array.from(sin), [cap, half])),
      n: cap,
    };
    return this.#rope;
  }

  /**
   * Forward of ids (B·T, row by row; a host Int32Array, or an i32 tensor already on the GPU
   * as in generation): the attention plan, then the layers, then the head. Returns tensors
   * in the caller's scope.
   */
  forward(ids: Int32Array | Tensor, o: GpuForwardOptions = {}): GpuForwardResult {
    if (this.#disposed) throw new ModelError("forward: this GpuModel was disposed");
    const c = this.config, rt = this.rt;
    const plan = attentionPlan(c, ids, o);
    const { B, T, N, cache } = plan;
    if (cache && plan.p0 === 0) cache.leftPad = plan.leftPad;
    const w = new CallWeights(c, this.weights, o.weights, o.lora, o.dropoutSeed);

    // Constants of this call (tensors in the caller's scope).
    const host = ids instanceof Int32Array ? ids : undefined;
    const idsT = ids instanceof Int32Array ? rt.tensor(ids, [N], "i32") : ids;
    const posT = rt.tensor(plan.pos, [N], "i32");
    const a: CallAttention = {
      rt,
      plan,
      pos: posT,
      segIds: plan.segIds && rt.tensor(plan.segIds, [B, T], "i32"),
      mask: plan.mask &&
        { scores: rt.tensor(plan.mask.data, plan.mask.shape), causal: plan.mask.causal },
      rope: c.positions === "rope"
        ? this.#ropeTables(plan.pos.reduce((m, p) => Math.max(m, p), 0) + 1)
        : undefined,
    };

    // Embeddings (+ learned positions). x: (B·T, C)
    let x = embedding(w.get("embed"), idsT, host);
    if (c.positions === "learned") x = add(x, embedding(w.get("pos"), posT, plan.pos));
    for (let l = 0; l < c.layers; l++) x = block(x, l, w, a);
    if (cache) cache.length = plan.p0 + T;
    return head(x, w, plan, o.logits, rt.maxBindingBytes);
  }

  /**
   * Per-token NLL (B·T; 0 where the target is −1) and the hidden states. The head and the
   * cross-entropy run in row chunks whose logits fit the adapter's largest bindable buffer
   * (lavapipe: 128 MiB = 5,461 rows of a 6,144-entry vocabulary), so any batch works.
   * Targets default to each row's next token (the last position: −1).
   */
  nll(ids: Int32Array | Tensor, o: GpuLossOptions = {}): { nll: Tensor; hidden: Tensor } {
    const rt = this.rt, B = o.batch ?? 1, V = this.config.vocab;
    const N = ids instanceof Int32Array ? ids.length : ids.size, T = N / B;
    const { hidden } = this.forward(ids, { ...o, logits: "none" });
    let targets: Tensor;
    if (o.targets instanceof Int32Array || o.targets === undefined) {
      let t = o.targets;
      if (!t) {
        if (!(ids instanceof Int32Array)) {
          throw new ModelError("loss: pass targets when the ids are a GPU tensor");
        }
        t = new Int32Array(N).fill(-1);
        for (let b = 0; b < B; b++) {
          for (let i = 0; i + 1 < T; i++) t[b * T + i] = ids[b * T + i + 1];
        }
      }
      if (t.length !== N) throw new ModelError(`loss: targets has ${t.length} entries; need ${N}`);
      for (const y of t) {
        if (!(y >= -1 && y < V)) {
          throw new ModelError(`loss: target ${y} is outside the vocabulary (−1 = ignore)`);
        }
      }
      targets = rt.tensor(t, [N], "i32");
    } else {
      targets = o.targets;
      if (targets.size !== N || targets.dtype !== "i32") {
        throw new ModelError(`loss: targets ${targets} must be i32 with ${N} entries`);
      }
    }
    const w = new CallWeights(this.config, this.weights, o.weights);
    const maxRows = Math.max(1, o.headRows ?? Math.floor(rt.maxBindingBytes / (4 * V)));
    const chunks = Math.ceil(N / maxRows), rows = Math.ceil(N / chunks);
    const parts: Tensor[] = [];
    for (let at = 0; at < N; at += rows) {
      const len = Math.min(rows, N - at);
      const h = chunks === 1 ? hidden : slice(hidden, 0, at, len);
      const tg = chunks === 1 ? targets : sliceI32(targets, at, len);
      // The cross-entropy's backward reads its targets after this call has returned.
      parts.push(crossEntropyRows(holdWith(w.output(h), [tg]), tg));
    }
    return { nll: parts.length === 1 ? parts[0] : concat(parts, 0), hidden };
  }

  /**
   * Weighted causal-LM loss Σ_i w_i·NLL_i / denominator (scalar [1]) — a function of the
   * tensors in `lora` / `weights`, for grad and hvp.
   */
  loss(ids: Int32Array | Tensor, o: GpuLossOptions = {}): Tensor {
    const rt = this.rt, B = o.batch ?? 1;
    const N = ids instanceof Int32Array ? ids.length : ids.size, T = N / B;
    const { nll, hidden } = this.nll(ids, o);
    const w = o.tokenWeights;
    const wT = w === undefined
      ? undefined
      : w instanceof Float32Array
      ? rt.tensor(w, [N])
      : typeof w === "function"
      ? w(hidden)
      : w;
    if (wT && wT.size !== N) throw new ModelError(`loss: ${wT.size} token weights; need ${N}`);
    const total = sumAll(wT ? mul(nll, reshape(wT, [N])) : nll);
    return scale(total, 1 / (o.denominator ?? B * Math.max(1, T - 1)));
  }
}
