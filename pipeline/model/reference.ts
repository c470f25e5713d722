/**
 * The float64 reference decoder: a plain, loop-by-loop forward of gpt2 / qwen2 / llama over
 * the canonical weights (pipeline/model/README.md), with optional LoRA, a KV cache, and greedy
 * generation. It is the oracle the GPU forward is tested against, so it favours being
 * obviously right over being fast: every product is accumulated in float64.
 */
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { applyRope, ropeTables } from "./rope.ts";
import type { Model, Tensor } from "./weights.ts";

/**
 * LoRA deltas for the reference: tensors "layers.{i}.{module}.lora_A" (in, r) and
 * ".lora_B" (r, out); a targeted linear computes y += scale·(x·A)·B. GPT-2's module "qkv"
 * is the fused c_attn: its B is (r, 3C) and its output splits into q | k | v.
 * Dropout is not applied here (the reference is the eval-mode function).
 */
export interface ReferenceLora {
  readonly scale: number;
  readonly tensors: ReadonlyMap<string, Tensor>;
}

/** Keys and values seen so far, per layer: (length, Hkv·hd) rows in float64. */
export class KvCache {
  length = 0;
  readonly k: Float64Array[];
  readonly v: Float64Array[];
  constructor(readonly config: ModelConfig, readonly capacity = config.maxPositions) {
    const w = config.kvHeads * config.headDim;
    this.k = Array.from({ length: config.layers }, () => new Float64Array(capacity * w));
    this.v = Array.from({ length: config.layers }, () => new Float64Array(capacity * w));
  }
}

export interface ForwardOptions {
  readonly lora?: ReferenceLora;
  /** Continue from (and append to) this cache; positions start at cache.length. */
  readonly cache?: KvCache;
  /** "last": logits of the last position only (generation); default "all". */
  readonly logits?: "all" | "last";
}

export interface ForwardResult {
  /** (T, V), or (1, V) with logits: "last". */
  readonly logits: Float64Array;
  /** (T, C): the last layer's output after the final norm (what PERK's weighting model reads). */
  readonly hidden: Float64Array;
}

/** y (T, out) = x (T, in) · W (in, out) + b. */
function linear(x: Float64Array, T: number, w: Tensor, b?: Tensor): Float64Array {
  const [inn, out] = w.shape, W = w.data;
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) {
    const yo = t * out;
    if (b) { for (let j = 0; j < out; j++) y[yo + j] = b.data[j]; }
    for (let i = 0; i < inn; i++) {
      const a = x[t * inn + i];
      if (a === 0) continue;
      const wo = i * out;
      for (let j = 0; j < out; j++) y[yo + j] += a * W[wo + j];
    }
  }
  return y;
}

/** y += scale·(x·A)·B, columns [col0, col0+width) of B only. */
function addLora(
  y: Float64Array,
  x: Float64Array,
  T: number,
  A: Tensor,
  B: Tensor,
  scale: number,
  col0 = 0,
  width = B.shape[1],
): void {
  const xa = linear(x, T, A); // (T, r)
  const r = A.shape[1], bw = B.shape[1];
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < r; k++) {
      const a = scale * xa[t * r + k];
      if (a === 0) continue;
      for (let j = 0; j < width; j++) y[t * width + j] += a * B.data[k * bw + col0 + j];
    }
  }
}

function norm(c: ModelConfig, x: Float64Array, T: number, w: Tensor, b?: Tensor): Float64Array {
  const C = c.dim, y = new Float64Array(T * C);
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let mean = 0;
    if (c.norm === "layernorm") {
      for (let i = 0; i < C; i++) mean += x[o + i];
      mean /= C;
    }
    let sq = 0;
    for (let i = 0; i < C; i++) sq += (x[o + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(sq / C + c.normEps);
    for (let i = 0; i < C; i++) {
      y[o + i] = (x[o + i] - mean) * inv * w.data[i] + (b ? b.data[i] : 0);
    }
  }
  return y;
}

const GELU_K = Math.sqrt(2 / Math.PI);
const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(GELU_K * (x + 0.044715 * x * x * x)));
const silu = (x: number) => x / (1 + Math.exp(-x));

/** Tables are reused across calls: one per config object and length. */
const ropeCache = new WeakMap<ModelConfig, { cos: Float64Array; sin: Float64Array; n: number }>();
function rope(c: ModelConfig, n: number) {
  let t = ropeCache.get(c);
  if (!t || t.n < n) {
    t = { ...ropeTables(c, n), n };
    ropeCache.set(c, t);
  }
  return t;
}

/** Forward of `tokens` (appended after the cache's contents when a cache is given). */
export function forward(
  model: Model,
  tokens: readonly number[],
  opts: ForwardOptions = {},
): ForwardResult {
  const c = model.config, W = model.weights;
  const get = (n: string): Tensor => {
    const t = W.get(n);
    if (!t) throw new ModelError(`reference forward: weight "${n}" is missing`);
    return t;
  };
  const opt = (n: string) => W.get(n);
  const cache = opts.cache ?? new KvCache(c, tokens.length);
  const T = tokens.length, C = c.dim, H = c.heads, Hkv = c.kvHeads, hd = c.headDim;
  const p0 = cache.length;
  if (p0 + T > cache.capacity || p0 + T > c.maxPositions) {
    throw new ModelError(
      `reference forward: ${p0 + T} positions exceed the limit ` +
        `(${Math.min(cache.capacity, c.maxPositions)}); shorten the input`,
    );
  }
  const lora = opts.lora;
  const loraOf = (layer: number, m: string) => {
    if (!lora) return undefined;
    const A = lora.tensors.get(`layers.${layer}.${m}.lora_A`);
    const B = lora.tensors.get(`layers.${layer}.${m}.lora_B`);
    return A && B ? { A, B } : undefined;
  };
  const proj = (x: Float64Array, layer: number, m: string) => {
    const y = linear(x, T, get(`layers.${layer}.${m}.weight`), opt(`layers.${layer}.${m}.bias`));
    const l = loraOf(layer, m);
    if (l) addLora(y, x, T, l.A, l.B, lora!.scale);
    return y;
  };

  // Embedding (+ learned positions). x: (T, C)
  const x = new Float64Array(T * C);
  const emb = get("embed").data, pos = c.positions === "learned" ? get("pos").data : undefined;
  for (let t = 0; t < T; t++) {
    const id = tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= c.vocab) {
      throw new ModelError(
        `reference forward: token id ${id} is outside the vocabulary (${c.vocab})`,
      );
    }
    for (let i = 0; i < C; i++) {
      x[t * C + i] = emb[id * C + i] + (pos ? pos[(p0 + t) * C + i] : 0);
    }
  }
  const tables = c.positions === "rope" ? rope(c, p0 + T) : undefined;
  const kvw = Hkv * hd, group = H / Hkv, scale = 1 / Math.sqrt(hd);

  for (let l = 0; l < c.layers; l++) {
    const h = norm(c, x, T, get(`layers.${l}.norm1.weight`), opt(`layers.${l}.norm1.bias`));
    const q = proj(h, l, "q"), k = proj(h, l, "k"), v = proj(h, l, "v"); // (T,H·hd) (T,Hkv·hd)
    const fused = loraOf(l, "qkv");
    if (fused) {
      addLora(q, h, T, fused.A, fused.B, lora!.scale, 0, H * hd);
      addLora(k, h, T, fused.A, fused.B, lora!.scale, H * hd, kvw);
      addLora(v, h, T, fused.A, fused.B, lora!.scale, H * hd + kvw, kvw);
    }
    if (tables) {
      for (let t = 0; t < T; t++) {
        for (let a = 0; a < H; a++) {
          applyRope(q, t * H * hd + a * hd, hd, tables.cos, tables.sin, p0 + t);
        }
        for (let a = 0; a < Hkv; a++) {
          applyRope(k, t * kvw + a * hd, hd, tables.cos, tables.sin, p0 + t);
        }
      }
    }
    const K = cache.k[l], V = cache.v[l];
    K.set(k, p0 * kvw);
    V.set(v, p0 * kvw);

    // Causal attention: position p0+t sees cache rows 0..p0+t. att: (T, H·hd)
    const att = new Float64Array(T * H * hd);
    const s = new Float64Array(p0 + T);
    for (let t = 0; t < T; t++) {
      const n = p0 + t + 1;
      for (let a = 0; a < H; a++) {
        const qo = t * H * hd + a * hd, ko = Math.floor(a / group) * hd;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          let d = 0;
          for (let e = 0; e < hd; e++) d += q[qo + e] * K[j * kvw + ko + e];
          s[j] = d * scale;
          if (s[j] > max) max = s[j];
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - max);
        for (let j = 0; j < n; j++) {
          const p = s[j] / sum;
          for (let e = 0; e < hd; e++) att[qo + e] += p * V[j * kvw + ko + e];
        }
      }
    }
    const o = proj(att, l, "o");
    for (let i = 0; i < x.length; i++) x[i] += o[i];

    const h2 = norm(c, x, T, get(`layers.${l}.norm2.weight`), opt(`layers.${l}.norm2.bias`));
    let down: Float64Array;
    if (c.act === "silu") {
      const g = proj(h2, l, "gate"), u = proj(h2, l, "up");
      for (let i = 0; i < g.length; i++) g[i] = silu(g[i]) * u[i];
      down = proj(g, l, "down");
    } else {
      const f = proj(h2, l, "fc");
      for (let i = 0; i < f.length; i++) f[i] = gelu(f[i]);
      down = proj(f, l, "proj");
    }
    for (let i = 0; i < x.length; i++) x[i] += down[i];
  }
  cache.length = p0 + T;

  const hidden = norm(c, x, T, get("norm_f.weight"), opt("norm_f.bias"));
  const rows = opts.logits === "last" ? 1 : T;
  const from = hidden.subarray((T - rows) * C);
  let logits: Float64Array;
  if (c.tiedEmbeddings) {
    // logits = hidden · embedᵀ; embed is (V, C).
    logits = new Float64Array(rows * c.vocab);
    for (let t = 0; t < rows; t++) {
      for (let vv = 0; vv < c.vocab; vv++) {
        let d = 0;
        for (let i = 0; i < C; i++) d += from[t * C + i] * emb[vv * C + i];
        logits[t * c.vocab + vv] = d;
      }
    }
  } else logits = linear(from, rows, get("lm_head.weight"));
  return { logits, hidden };
}

/** Index of the largest value (first one on ties, as llama.c's argmax). */
export function argmax(x: ArrayLike<number>, from = 0, n = x.length - from): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (x[from + i] > x[from + best]) best = i;
  return best;
}

export interface GenerateOptions {
  /** New tokens at most. */
  readonly maxNewTokens: number;
  /** Stop tokens (not included in the result); default the config's eosIds. */
  readonly stopIds?: readonly number[];
  /** false: recompute the whole sequence each step (the cache's oracle). Default true. */
  readonly useCache?: boolean;
  readonly lora?: ReferenceLora;
  /** Called with each new token as it is chosen (streaming output). */
  readonly onToken?: (row: number, token: number) => void;
}

export interface Generation {
  /** New tokens, without the stop token. */
  readonly tokens: number[];
  /** Why it stopped: a stop token, maxNewTokens, or the model's position limit. */
  readonly stop: "eos" | "max_tokens" | "max_positions";
}

/** Greedy decoding of several prompts (any lengths; each row is independent). */
export function generateGreedyBatch(
  model: Model,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions,
): Generation[] {
  const c = model.config, stops = new Set(opts.stopIds ?? c.eosIds);
  const useCache = opts.useCache ?? true;
  const rows = prompts.map((p) => {
    if (p.length === 0) throw new ModelError("generate: a prompt needs at least one token");
    return {
      seq: [...p],
      out: [] as number[],
      stop: undefined as Generation["stop"] | undefined,
      // Capacity for this row only (a full maxPositions cache can be GBs on big models).
      cache: useCache
        ? new KvCache(c, Math.min(c.maxPositions, p.length + opts.maxNewTokens))
        : undefined,
      fed: 0, // tokens of seq already in the cache
    };
  });
  for (let step = 0; step < opts.maxNewTokens; step++) {
    for (const [i, r] of rows.entries()) {
      if (r.stop) continue;
      if (r.seq.length >= c.maxPositions) {
        r.stop = "max_positions";
        continue;
      }
      const { logits } = r.cache
        ? forward(model, r.seq.slice(r.fed), { cache: r.cache, lora: opts.lora, logits: "last" })
        : forward(model, r.seq, { lora: opts.lora, logits: "last" });
      r.fed = r.seq.length;
      const next = argmax(logits);
      if (stops.has(next)) r.stop = "eos";
      else {
        r.out.push(next);
        r.seq.push(next);
        opts.onToken?.(i, next);
      }
    }
    if (rows.every((r) => r.stop)) break;
  }
  return rows.map((r) => ({ tokens: r.out, stop: r.stop ?? "max_tokens" }));
}

/** Greedy decoding of one prompt. */
export function generateGreedy(
  model: Model,
  prompt: readonly number[],
  opts: GenerateOptions,
): Generation {
  return generateGreedyBatch(model, [prompt], opts)[0];
}

/** Per-position negative log-likelihood −log softmax(logits[t])[targets[t]] (float64). */
export function tokenNll(
  logits: Float64Array,
  vocab: number,
  targets: readonly number[],
): Float64Array {
  if (logits.length !== targets.length * vocab) {
    throw new ModelError(
      `tokenNll: ${logits.length} logits for ${targets.length} targets × ${vocab}`,
    );
  }
  const out = new Float64Array(targets.length);
  targets.forEach((y, t) => {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = -Infinity, sum = 0;
    for (const v of row) if (v > max) max = v;
    for (const v of row) sum += Math.exp(v - max);
    out[t] = max + Math.log(sum) - row[y];
  });
  return out;
}
