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
import {
  add,
  concat,
  geluTanh,
  matmul,
  mul,
  permute,
  reshape,
  scale,
  slice,
  sumAll,
} from "../../kernels/autodiff/basic.ts";
import {
  attention,
  crossEntropyRows,
  dropout as dropoutOp,
  layerNorm,
  loraLinear,
  type LoraWeights,
  rmsNorm,
  softmax,
} from "../../kernels/autodiff/nn.ts";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import type { LoraParams } from "./lora.ts";
import { ropeTables } from "./rope.ts";
import { type Model, validateWeights } from "./weights.ts";
import { sliceInto } from "../../kernels/ops/strided.ts";
import { qkvHeads } from "../../kernels/autodiff/qkv_heads.ts";
import { swiglu } from "../../kernels/autodiff/swiglu.ts";
import { embedding, frozenLinear, holdWith, sliceI32 } from "../../kernels/autodiff/model_ops.ts";

/** LoRA tensors for the GPU forward. */
export interface GpuLora {
  /** y += scale·(x·A)·B. */
  readonly scale: number;
  /** "layers.{i}.{module}.lora_A" (in, r) and ".lora_B" (r, out), modules as lora.ts. */
  readonly tensors: ReadonlyMap<string, Tensor>;
  /** Dropout probability on the LoRA input; applied only when forward gets a dropoutSeed. */
  readonly dropout?: number;
}

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

/**
 * Keys and values of every layer so far, (B, Hkv, ·, hd), owned by the cache. Without a
 * capacity each forward appends by concatenation (the key length grows, so every step has
 * new shapes — new matmul pipelines on the first run). With a capacity the tensors are
 * allocated once, filled in place, and attention always spans all `capacity` slots with the
 * unfilled ones masked: shapes stay fixed from step to step (generation). A capacity cache
 * is for inference: what is written into it is not differentiated.
 */
export class GpuKvCache {
  length = 0;
  readonly k: (Tensor | undefined)[];
  readonly v: (Tensor | undefined)[];
  /** Left padding of each row, fixed by the first forward that fills the cache. */
  leftPad: Int32Array | undefined;
  constructor(
    readonly config: ModelConfig,
    readonly batch: number,
    readonly capacity?: number,
  ) {
    if (capacity !== undefined && !(Number.isInteger(capacity) && capacity > 0)) {
      throw new ModelError(`KV cache: capacity must be a positive integer, got ${capacity}`);
    }
    this.k = new Array(config.layers).fill(undefined);
    this.v = new Array(config.layers).fill(undefined);
  }
  dispose(): void {
    for (const t of [...this.k, ...this.v]) t?.dispose();
    this.k.fill(undefined);
    this.v.fill(undefined);
    this.length = 0;
  }
}

export interface GpuForwardOptions {
  /** Rows B of the (B, T) batch (default 1; ids hold B·T tokens row by row). */
  readonly batch?: number;
  readonly lora?: GpuLora;
  /** Base weights being differentiated (canonical names): they replace the frozen ones. */
  readonly weights?: ReadonlyMap<string, Tensor>;
  /** Explicit positions (B·T). Default: offset (or the cache length) + t − leftPad[b]. */
  readonly positions?: Int32Array;
  /** First position when positions are implicit (default 0, or the cache's length). */
  readonly offset?: number;
  /** Pad tokens at the start of each row (B): masked as keys, positions start after them. */
  readonly leftPad?: ArrayLike<number>;
  /**
   * (B·T) segment ids: tokens attend only within their segment (packed documents), and
   * implicit positions restart at each segment's first token. Not with a cache.
   */
  readonly segIds?: Int32Array;
  /** Attend to, and append to, this cache. */
  readonly kvCache?: GpuKvCache;
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

const MASKED = -1e9;

/** (B·T) segment ids of left-padded rows: 0 on each row's `pad[b]` pad tokens, 1 after. */
function padSegments(pad: ArrayLike<number>, T: number): Int32Array {
  const seg = new Int32Array(pad.length * T).fill(1);
  for (let b = 0; b < pad.length; b++) seg.fill(0, b * T, b * T + pad[b]);
  return seg;
}

/** Mix a dropout seed with a linear's index (distinct masks per linear, reproducible). */
function mixSeed(seed: number, k: number): number {
  let h = (seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
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

  /** Implicit or explicit positions (B·T), checked against the model's limit. */
  #positions(B: number, T: number, p0: number, o: GpuForwardOptions, pad?: Int32Array) {
    const N = B * T, maxP = this.config.maxPositions;
    let pos: Int32Array;
    if (o.positions) {
      if (o.positions.length !== N) {
        throw new ModelError(`forward: positions has ${o.positions.length} entries; need ${N}`);
      }
      pos = o.positions;
    } else {
      pos = new Int32Array(N);
      for (let b = 0; b < B; b++) {
        let start = 0;
        for (let t = 0; t < T; t++) {
          const i = b * T + t;
          if (o.segIds && t > 0 && o.segIds[i] !== o.segIds[i - 1]) start = t;
          pos[i] = Math.max(0, p0 + t - start - (pad ? pad[b] : 0));
        }
      }
    }
    for (const p of pos) {
      if (!(p >= 0 && p < maxP)) {
        throw new ModelError(
          `forward: position ${p} is outside the model's ${maxP} positions; shorten the input`,
        );
      }
    }
    return pos;
  }

  /**
   * Forward of ids (B·T, row by row; a host Int32Array, or an i32 tensor already on the GPU
   * as in generation). Returns tensors in the caller's scope.
   */
  forward(ids: Int32Array | Tensor, o: GpuForwardOptions = {}): GpuForwardResult {
    if (this.#disposed) throw new ModelError("forward: this GpuModel was disposed");
    const c = this.config, rt = this.rt;
    const B = o.batch ?? 1, N = ids instanceof Int32Array ? ids.length : ids.size;
    if (!Number.isInteger(B) || B <= 0 || N % B || N === 0) {
      throw new ModelError(`forward: ${N} ids do not split into ${B} non-empty rows`);
    }
    const T = N / B;
    const host = ids instanceof Int32Array ? ids : undefined;
    if (host) {
      for (const id of host) {
        if (!(id >= 0 && id < c.vocab)) {
          throw new ModelError(`forward: token id ${id} is outside the vocabulary (${c.vocab})`);
        }
      }
    } else if ((ids as Tensor).dtype !== "i32") {
      throw new ModelError(`forward: ids ${ids} must be i32`);
    }
    const cache = o.kvCache;
    if (cache && cache.batch !== B) {
      throw new ModelError(`forward: the KV cache holds ${cache.batch} rows; got ${B}`);
    }
    if (cache && o.segIds) throw new ModelError("forward: segIds cannot be used with a KV cache");
    if (o.segIds && o.segIds.length !== N) {
      throw new ModelError(`forward: segIds has ${o.segIds.length} entries; need ${N}`);
    }
    const p0 = cache?.length ?? 0;
    let pad = cache?.leftPad;
    if (o.leftPad) {
      const lp = Int32Array.from(o.leftPad);
      if (lp.length !== B || lp.some((p) => p < 0 || p >= p0 + T)) {
        throw new ModelError(`forward: leftPad needs ${B} counts, each < the row length`);
      }
      const fixed = cache && p0 > 0 ? pad ?? new Int32Array(B) : undefined;
      if (fixed?.some((p, i) => p !== lp[i])) {
        throw new ModelError("forward: leftPad differs from the cache's (fixed at its first use)");
      }
      pad = lp;
    }
    if (cache && p0 === 0) cache.leftPad = pad;
    const padded = pad?.some((p) => p > 0) ?? false;
    const pos = this.#positions(B, T, o.offset ?? p0, o, padded ? pad : undefined);

    const W = (name: string) => this.#weight(name, o.weights);
    const opt = (name: string) => o.weights?.get(name) ?? this.weights.get(name);
    const linear = (x: Tensor, weight: string, bias?: string) =>
      this.#linear(x, weight, bias, false, o.weights);
    const lora = o.lora;
    let linearIndex = 0;
    /**
     * The adapter of linear (l, m) — its dropout seeded by the linear's index k, counted
     * over every linear that may carry one (so masks do not depend on which ones do).
     */
    const adapter = (l: number, m: string): LoraWeights | undefined => {
      const k = linearIndex++;
      if (!lora) return undefined;
      const A = lora.tensors.get(`layers.${l}.${m}.lora_A`);
      const Bm = lora.tensors.get(`layers.${l}.${m}.lora_B`);
      if (!A || !Bm) return undefined;
      const p = lora.dropout ?? 0;
      const dropout = o.dropoutSeed !== undefined && p > 0
        ? { p, seed: mixSeed(o.dropoutSeed, k) }
        : undefined;
      return { A, B: Bm, scale: lora.scale, dropout };
    };
    /** s·(dropout(x)·A)·B alone (GPT-2's fused c_attn adapter); undefined without one. */
    const loraTerm = (x: Tensor, l: number, m: string): Tensor | undefined => {
      const ad = adapter(l, m);
      if (!ad) return undefined;
      const xd = ad.dropout ? dropoutOp(x, ad.dropout.p, ad.dropout.seed) : x;
      return matmul(matmul(xd, ad.A), ad.B, { alpha: ad.scale });
    };
    /** x·W (+ b) with its adapter as one fused op (nn.ts loraLinear) when it has one. */
    const proj = (x: Tensor, l: number, m: string) => {
      const weight = `layers.${l}.${m}.weight`, bias = `layers.${l}.${m}.bias`;
      const ad = adapter(l, m);
      if (!ad) return linear(x, weight, bias);
      return loraLinear(x, W(weight), o.weights?.get(bias) ?? this.weights.get(bias), ad);
    };
    const norm = (x: Tensor, name: string) =>
      c.norm === "rmsnorm"
        ? rmsNorm(x, W(`${name}.weight`), c.normEps)
        : layerNorm(x, W(`${name}.weight`), opt(`${name}.bias`), c.normEps);

    // Constants of this call (tensors in the caller's scope).
    const idsT = host ? rt.tensor(host, [N], "i32") : ids as Tensor;
    const posT = rt.tensor(pos, [N], "i32");
    const cap = cache?.capacity;
    if (cap !== undefined && p0 + T > cap) {
      throw new ModelError(`forward: ${p0 + T} tokens overflow the KV cache's ${cap} slots`);
    }
    // How attention sees its keys. The fused kernel never builds the (B, H, T, S) scores, so
    // it runs wherever its causal rule (query t sees keys j ≤ t + S − T) and segment ids
    // express the mask:
    //  - a first fill (p0 = 0) attends to its own T keys; left padding becomes segment 0
    //    (real tokens are segment 1), so no real query sees a pad key;
    //  - a later unpadded chunk (T > 1) of a fixed-capacity cache attends to slots [0, p0 + T),
    //    copied out of the cache (the unfilled slots are never read);
    //  - a growing cache's later unpadded call attends to the concatenated keys.
    // The rest use composed attention with an additive mask: padded rows after the first fill,
    // a capacity cache's one-token decode steps (small (B, H, 1, S) scores, and fixed shapes:
    // one set of pipelines for the whole generation), and left padding with caller segIds.
    const firstFill = p0 === 0;
    const useMask = firstFill ? padded && !!o.segIds : padded || (cap !== undefined && T === 1);
    const keysFrom = cap === undefined ? "grown" : firstFill ? "own" : useMask ? "cache" : "prefix";
    const segT = o.segIds
      ? rt.tensor(o.segIds, [B, T], "i32")
      : padded && firstFill
      ? rt.tensor(padSegments(pad!, T), [B, T], "i32")
      : undefined;
    const S = keysFrom === "cache" ? cap! : p0 + T; // key slots attended to
    // Without useMask the fused kernel's causal offset and segments cover the mask.
    let mask: Tensor | undefined;
    if (useMask && cap !== undefined) {
      // Fixed-size cache: query t (slot p0 + t) sees slots pad_b ≤ s ≤ p0 + t.
      const m = new Float32Array(B * T * S).fill(MASKED);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < T; t++) {
          const o = (b * T + t) * S;
          m.fill(0, o + (padded ? pad![b] : 0), o + p0 + t + 1);
        }
      }
      mask = rt.tensor(m, [B, 1, T, S]);
    } else if (useMask) {
      // A growing cache or none: only padded rows get here; their pad keys are masked.
      const m = new Float32Array(B * S);
      for (let b = 0; b < B; b++) m.fill(MASKED, b * S, b * S + pad![b]);
      mask = rt.tensor(m, [B, 1, 1, S]);
    }
    const rope = c.positions === "rope"
      ? this.#ropeTables(pos.reduce((m, p) => Math.max(m, p), 0) + 1)
      : undefined;

    // Embeddings (+ learned positions). x: (B·T, C)
    let x = embedding(W("embed"), idsT, host);
    if (c.positions === "learned") x = add(x, embedding(W("pos"), posT, pos));

    const H = c.heads, Hkv = c.kvHeads, hd = c.headDim, grp = H / Hkv;
    const qw = H * hd, kvw = Hkv * hd;
    for (let l = 0; l < c.layers; l++) {
      const h = norm(x, `layers.${l}.norm1`);
      let q = proj(h, l, "q"), k = proj(h, l, "k"), v = proj(h, l, "v"); // (BT, H·hd) (BT, Hkv·hd)
      const fused = loraTerm(h, l, "qkv"); // GPT-2's c_attn adapter: q | k | v columns
      if (fused) {
        q = add(q, slice(fused, 1, 0, qw));
        k = add(k, slice(fused, 1, qw, kvw));
        v = add(v, slice(fused, 1, qw + kvw, kvw));
      }
      // The attention scale on q (smaller than the scores), RoPE on q and k, and the
      // head-major layout (B, heads, T, hd), as one op (kernels/autodiff/qkv_heads.ts).
      const rot = rope && { cos: rope.cos, sin: rope.sin, pos: posT };
      const L = { B, T, H, Hkv, hd, qScale: 1 / Math.sqrt(hd) };
      const [qh, kh0, vh0] = qkvHeads(q, k, v, L, rot);
      let kh = kh0, vh = vh0; // (B, Hkv, T, hd)
      if (cache && cap !== undefined) {
        for (const [list, t] of [[cache.k, kh], [cache.v, vh]] as const) {
          const buf = list[l] ??= rt.keep(rt.zeros([B, Hkv, cap, hd]));
          sliceInto(buf, t, 2, p0);
        }
        if (keysFrom === "cache") {
          kh = cache.k[l]!;
          vh = cache.v[l]!;
        } else if (keysFrom === "prefix") {
          kh = slice(cache.k[l]!, 2, 0, S);
          vh = slice(cache.v[l]!, 2, 0, S);
        } // "own": this call's keys
      } else if (cache) {
        const pk = cache.k[l], pv = cache.v[l];
        if (pk && pv) {
          kh = concat([pk, kh], 2);
          vh = concat([pv, vh], 2);
        }
        // The cache owns its tensors (out of every scope); a recorded tape that still reads
        // the previous ones holds references of its own.
        cache.k[l] = rt.keep(kh);
        cache.v[l] = rt.keep(vh);
        pk?.dispose();
        pv?.dispose();
      }
      let att: Tensor; // (B, H, T, hd)
      if (!mask) {
        // Fused (flash) attention, causal with the S − T offset of a growing cache: no
        // (B, H, T, S) score matrix, forward, backward and their tangents (q is pre-scaled).
        att = attention(qh, kh, vh, { causal: true, segIds: segT, scale: 1 });
      } else {
        // Padded rows or a fixed-capacity cache need an additive mask: composed attention.
        // Grouped-query without copying k/v: view q (B, H, T, hd) as (B, Hkv, grp·T, hd) —
        // head a = kvHead·grp + g, as HF's repeat_kv — and the scores back as (B, H, T, S).
        const qg = reshape(qh, [B, Hkv, grp * T, hd]);
        let s = reshape(matmul(qg, kh, { transB: true }), [B, H, T, S]);
        if (mask) s = add(s, mask);
        const p = softmax(s, { heads: H, causal: cap === undefined, segIds: segT });
        att = reshape(matmul(reshape(p, [B, Hkv, grp * T, S]), vh), [B, H, T, hd]);
      }
      const merged = reshape(permute(att, [0, 2, 1, 3]), [N, qw]);
      x = add(x, proj(merged, l, "o"));
      const h2 = norm(x, `layers.${l}.norm2`);
      const mlp = c.act === "silu"
        ? proj(swiglu(proj(h2, l, "gate"), proj(h2, l, "up")), l, "down")
        : proj(geluTanh(proj(h2, l, "fc")), l, "proj");
      x = add(x, mlp);
    }
    if (cache) cache.length = p0 + T;
    const hidden = norm(x, "norm_f");
    if (o.logits === "none") return { logits: undefined, hidden };
    if (o.logits !== "last" && N * c.vocab * 4 > rt.maxBindingBytes) {
      throw new ModelError(
        `forward: logits of ${N} tokens × ${c.vocab} exceed this adapter's largest bindable ` +
          `buffer (${rt.maxBindingBytes} bytes); use nll() or loss() (they chunk the head), ` +
          `logits: "last", or fewer tokens per call`,
      );
    }
    const from = o.logits === "last"
      ? reshape(slice(reshape(hidden, [B, T, c.dim]), 1, T - 1, 1), [B, c.dim])
      : hidden;
    return { logits: this.#head(from, o.weights), hidden };
  }

  #weight(name: string, over?: ReadonlyMap<string, Tensor>): Tensor {
    const t = over?.get(name) ?? this.weights.get(name);
    if (!t) throw new ModelError(`forward: weight "${name}" is missing`);
    return t;
  }

  /** x·W (+ b), or x·Wᵀ (the tied head): frozen unless the caller passed W or b. */
  #linear(
    x: Tensor,
    weight: string,
    bias: string | undefined,
    transB: boolean,
    over?: ReadonlyMap<string, Tensor>,
  ): Tensor {
    const w = this.#weight(weight, over);
    const b = bias ? over?.get(bias) ?? this.weights.get(bias) : undefined;
    return over?.has(weight) || (bias && over?.has(bias))
      ? matmul(x, w, { bias: b, transB })
      : frozenLinear(x, w, b, transB);
  }

  /** Logits (rows, V) of final hidden states (rows, C). */
  #head(h: Tensor, over?: ReadonlyMap<string, Tensor>): Tensor {
    return this.config.tiedEmbeddings
      ? this.#linear(h, "embed", undefined, true, over)
      : this.#linear(h, "lm_head.weight", undefined, false, over);
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
    const maxRows = Math.max(1, o.headRows ?? Math.floor(rt.maxBindingBytes / (4 * V)));
    const chunks = Math.ceil(N / maxRows), rows = Math.ceil(N / chunks);
    const parts: Tensor[] = [];
    for (let at = 0; at < N; at += rows) {
      const len = Math.min(rows, N - at);
      const h = chunks === 1 ? hidden : slice(hidden, 0, at, len);
      const tg = chunks === 1 ? targets : sliceI32(targets, at, len);
      // The cross-entropy's backward reads its targets after this call has returned.
      parts.push(crossEntropyRows(holdWith(this.#head(h, o.weights), [tg]), tg));
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
