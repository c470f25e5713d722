/**
 * One forward call's layers on the GPU, written with the differentiable core: the weights the
 * call reads (`CallWeights`: frozen base, trainable replacements, LoRA adapters and their
 * dropout), one transformer layer (`block`: x += o(attn(norm1(x))), x += mlp(norm2(x)), its
 * attention run as the call's AttentionPlan says) and the `head` (final norm, logits).
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import {
  add,
  concat,
  geluTanh,
  matmul,
  permute,
  reshape,
  slice,
} from "../../kernels/autodiff/basic.ts";
import {
  attention,
  dropout as dropoutOp,
  layerNorm,
  loraLinear,
  type LoraWeights,
  rmsNorm,
  softmax,
} from "../../kernels/autodiff/nn.ts";
import { sliceInto } from "../../kernels/ops/strided.ts";
import { qkvHeads } from "../../kernels/autodiff/qkv_heads.ts";
import { swiglu } from "../../kernels/autodiff/swiglu.ts";
import { frozenLinear } from "../../kernels/autodiff/model_ops.ts";
import type { AttentionPlan } from "./attention_plan.ts";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";

/** LoRA tensors for the GPU forward. */
export interface GpuLora {
  /** y += scale·(x·A)·B. */
  readonly scale: number;
  /** "layers.{i}.{module}.lora_A" (in, r) and ".lora_B" (r, out), modules as lora.ts. */
  readonly tensors: ReadonlyMap<string, Tensor>;
  /** Dropout probability on the LoRA input; applied only when forward gets a dropoutSeed. */
  readonly dropout?: number;
}

/** Mix a dropout seed with a linear's index (distinct masks per linear, reproducible). */
function mixSeed(seed: number, k: number): number {
  let h = (seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The weights one call reads: the model's frozen tensors, the caller's trainable
 * replacements (`over`, canonical names) and LoRA adapters. One per call: each linear that
 * may carry an adapter takes the next index in call order, which seeds its dropout mask (so
 * masks do not depend on which linears carry adapters, and a call is reproducible).
 */
export class CallWeights {
  #linearIndex = 0;

  constructor(
    readonly config: ModelConfig,
    readonly frozen: ReadonlyMap<string, Tensor>,
    readonly over?: ReadonlyMap<string, Tensor>,
    readonly lora?: GpuLora,
    readonly dropoutSeed?: number,
  ) {}

  /** A weight, the caller's replacement first. */
  get(name: string): Tensor {
    const t = this.over?.get(name) ?? this.frozen.get(name);
    if (!t) throw new ModelError(`forward: weight "${name}" is missing`);
    return t;
  }

  /** An optional weight (a bias), the caller's replacement first. */
  opt(name: string): Tensor | undefined {
    return this.over?.get(name) ?? this.frozen.get(name);
  }

  /** x·W (+ b), or x·Wᵀ (the tied head): frozen unless the caller passed W or b. */
  linear(x: Tensor, weight: string, bias?: string, transB = false): Tensor {
    const w = this.get(weight);
    const b = bias ? this.over?.get(bias) ?? this.frozen.get(bias) : undefined;
    return this.over?.has(weight) || (bias && this.over?.has(bias))
      ? matmul(x, w, { bias: b, transB })
      : frozenLinear(x, w, b, transB);
  }

  /** Logits (rows, V) of final hidden states (rows, C). */
  output(h: Tensor): Tensor {
    return this.config.tiedEmbeddings
      ? this.linear(h, "embed", undefined, true)
      : this.linear(h, "lm_head.weight", undefined, false);
  }

  norm(x: Tensor, name: string): Tensor {
    const c = this.config;
    return c.norm === "rmsnorm"
      ? rmsNorm(x, this.get(`${name}.weight`), c.normEps)
      : layerNorm(x, this.get(`${name}.weight`), this.opt(`${name}.bias`), c.normEps);
  }

  /**
   * The adapter of linear (l, m) — its dropout seeded by the linear's index k, counted
   * over every linear that may carry one (so masks do not depend on which ones do).
   */
  #adapter(l: number, m: string): LoraWeights | undefined {
    const k = this.#linearIndex++;
    const lora = this.lora;
    if (!lora) return undefined;
    const A = lora.tensors.get(`layers.${l}.${m}.lora_A`);
    const Bm = lora.tensors.get(`layers.${l}.${m}.lora_B`);
    if (!A || !Bm) return undefined;
    const p = lora.dropout ?? 0;
    const dropout = this.dropoutSeed !== undefined && p > 0
      ? { p, seed: mixSeed(this.dropoutSeed, k) }
      : undefined;
    return { A, B: Bm, scale: lora.scale, dropout };
  }

  /** s·(dropout(x)·A)·B alone (GPT-2's fused c_attn adapter); undefined without one. */
  loraTerm(x: Tensor, l: number, m: string): Tensor | undefined {
    const ad = this.#adapter(l, m);
    if (!ad) return undefined;
    const xd = ad.dropout ? dropoutOp(x, ad.dropout.p, ad.dropout.seed) : x;
    return matmul(matmul(xd, ad.A), ad.B, { alpha: ad.scale });
  }

  /** x·W (+ b) of layer l's module m, with its adapter as one fused op when it has one. */
  proj(x: Tensor, l: number, m: string): Tensor {
    const weight = `layers.${l}.${m}.weight`, bias = `layers.${l}.${m}.bias`;
    const ad = this.#adapter(l, m);
    if (!ad) return this.linear(x, weight, bias);
    return loraLinear(x, this.get(weight), this.opt(bias), ad);
  }
}

/** A call's attention inputs on the GPU: its plan and the tensors the plan was uploaded as. */
export interface CallAttention {
  readonly rt: Runtime;
  readonly plan: AttentionPlan;
  /** (B·T) i32 positions. */
  readonly pos: Tensor;
  /** RoPE cos/sin tables (P, hd/2), for RoPE models. */
  readonly rope: { readonly cos: Tensor; readonly sin: Tensor } | undefined;
  /** (B, T) i32 segment ids (plan.segIds). */
  readonly segIds: Tensor | undefined;
  /** The additive score mask (plan.mask) and whether the softmax is causal too. */
  readonly mask: { readonly scores: Tensor; readonly causal: boolean } | undefined;
}

/**
 * Layer l's keys and values (B, Hkv, S, hd) from this call's (B, Hkv, T, hd), as the plan's
 * `keysFrom` says, writing this call's into the cache.
 */
function keysValues(
  l: number,
  kh: Tensor,
  vh: Tensor,
  c: ModelConfig,
  a: CallAttention,
): [Tensor, Tensor] {
  const { rt, plan } = a, cache = plan.cache, cap = cache?.capacity;
  if (!cache) return [kh, vh];
  if (cap === undefined) {
    // "grown": append to the cache's keys and values.
    const pk = cache.k[l], pv = cache.v[l];
    let k = kh, v = vh;
    if (pk && pv) {
      k = concat([pk, kh], 2);
      v = concat([pv, vh], 2);
    }
    // The cache owns its tensors (out of every scope); a recorded tape that still reads
    // the previous ones holds references of its own.
    cache.k[l] = rt.keep(k);
    cache.v[l] = rt.keep(v);
    pk?.dispose();
    pv?.dispose();
    return [k, v];
  }
  // A fixed-capacity cache: this call's keys go into slots [p0, p0 + T), in place.
  const write = (list: (Tensor | undefined)[], t: Tensor) => {
    const buf = list[l] ??= rt.keep(rt.zeros([plan.B, c.kvHeads, cap, c.headDim]));
    sliceInto(buf, t, 2, plan.p0);
    return buf;
  };
  const kc = write(cache.k, kh), vc = write(cache.v, vh);
  if (plan.keysFrom === "cache") return [kc, vc];
  if (plan.keysFrom === "prefix") return [slice(kc, 2, 0, plan.S), slice(vc, 2, 0, plan.S)];
  return [kh, vh]; // "own": this call's keys
}

/** Attention (B, H, T, hd) of pre-scaled queries (B, H, T, hd) over keys/values (B, Hkv, S, hd). */
function attend(qh: Tensor, kh: Tensor, vh: Tensor, c: ModelConfig, a: CallAttention): Tensor {
  if (!a.mask) {
    // Fused (flash) attention, causal with the S − T offset of a growing cache: no
    // (B, H, T, S) score matrix, forward, backward and their tangents (q is pre-scaled).
    return attention(qh, kh, vh, { causal: true, segIds: a.segIds, scale: 1 });
  }
  // Padded rows or a fixed-capacity cache need an additive mask: composed attention.
  // Grouped-query without copying k/v: view q (B, H, T, hd) as (B, Hkv, grp·T, hd) —
  // head a = kvHead·grp + g, as HF's repeat_kv — and the scores back as (B, H, T, S).
  const { B, T, S } = a.plan, H = c.heads, Hkv = c.kvHeads, hd = c.headDim, grp = H / Hkv;
  const qg = reshape(qh, [B, Hkv, grp * T, hd]);
  const s = add(reshape(matmul(qg, kh, { transB: true }), [B, H, T, S]), a.mask.scores);
  const p = softmax(s, { heads: H, causal: a.mask.causal, segIds: a.segIds });
  return reshape(matmul(reshape(p, [B, Hkv, grp * T, S]), vh), [B, H, T, hd]);
}

/** Transformer layer l on x (B·T, C): x += o(attn(norm1(x))), then x += mlp(norm2(x)). */
export function block(x: Tensor, l: number, w: CallWeights, a: CallAttention): Tensor {
  const c = w.config, { B, T, N } = a.plan;
  const H = c.heads, Hkv = c.kvHeads, hd = c.headDim;
  const qw = H * hd, kvw = Hkv * hd;
  const h = w.norm(x, `layers.${l}.norm1`);
  let q = w.proj(h, l, "q"), k = w.proj(h, l, "k"), v = w.proj(h, l, "v"); // (BT, H·hd) (BT, Hkv·hd)
  const fused = w.loraTerm(h, l, "qkv"); // GPT-2's c_attn adapter: q | k | v columns
  if (fused) {
    q = add(q, slice(fused, 1, 0, qw));
    k = add(k, slice(fused, 1, qw, kvw));
    v = add(v, slice(fused, 1, qw + kvw, kvw));
  }
  // The attention scale on q (smaller than the scores), RoPE on q and k, and the
  // head-major layout (B, heads, T, hd), as one op (kernels/autodiff/qkv_heads.ts).
  const rot = a.rope && { cos: a.rope.cos, sin: a.rope.sin, pos: a.pos };
  const [qh, kh, vh] = qkvHeads(q, k, v, { B, T, H, Hkv, hd, qScale: 1 / Math.sqrt(hd) }, rot);
  const att = attend(qh, ...keysValues(l, kh, vh, c, a), c, a); // (B, H, T, hd)
  const merged = reshape(permute(att, [0, 2, 1, 3]), [N, qw]);
  x = add(x, w.proj(merged, l, "o"));
  const h2 = w.norm(x, `layers.${l}.norm2`);
  const mlp = c.act === "silu"
    ? w.proj(swiglu(w.proj(h2, l, "gate"), w.proj(h2, l, "up")), l, "down")
    : w.proj(geluTanh(w.proj(h2, l, "fc")), l, "proj");
  return add(x, mlp);
}

/**
 * The head: the final norm (hidden (B·T, C)), then logits of every row (B·T, V), of each
 * row's last position (B, V), or none. Full logits must fit one bindable buffer.
 */
export function head(
  x: Tensor,
  w: CallWeights,
  plan: AttentionPlan,
  logits: "all" | "last" | "none" | undefined,
  maxBindingBytes: number,
): { logits: Tensor | undefined; hidden: Tensor } {
  const c = w.config, { B, T, N } = plan;
  const hidden = w.norm(x, "norm_f");
  if (logits === "none") return { logits: undefined, hidden };
  if (logits !== "last" && N * c.vocab * 4 > maxBindingBytes) {
    throw new ModelError(
      `forward: logits of ${N} tokens × ${c.vocab} exceed this adapter's largest bindable ` +
        `buffer (${maxBindingBytes} bytes); use nll() or loss() (they chunk the head), ` +
        `logits: "last", or fewer tokens per call`,
    );
  }
  const from = logits === "last"
    ? reshape(slice(reshape(hidden, [B, T, c.dim]), 1, T - 1, 1), [B, c.dim])
    : hidden;
  return { logits: w.output(from), hidden };
}
