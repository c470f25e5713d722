/**
 * ModelConfig: the one description our decoder is built from, parsed from a Hugging Face
 * `config.json` (gpt2, qwen2, llama) or made by llama2c.ts / tiny.ts. Everything the forward
 * needs is explicit here, so no code downstream looks at `model_type` strings.
 */
import { ModelError } from "./errors.ts";

export type Arch = "gpt2" | "qwen2" | "llama";
export const SUPPORTED_MODEL_TYPES: readonly Arch[] = ["gpt2", "qwen2", "llama"];

/** RoPE frequency scaling (HF `rope_scaling`); "default" = plain θ^(-2j/d). */
export type RopeScaling =
  | { readonly type: "default" }
  | { readonly type: "linear"; readonly factor: number }
  | {
    readonly type: "llama3";
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositions: number;
  }
  | {
    readonly type: "yarn";
    readonly factor: number;
    readonly originalMaxPositions: number;
    readonly betaFast: number;
    readonly betaSlow: number;
    /** Multiplies cos and sin (HF `attention_factor`); derived from factor when absent. */
    readonly attentionFactor: number;
    readonly truncate: boolean;
  };

export const SUPPORTED_ROPE_SCALING = ["linear", "llama3", "yarn"] as const;

export interface ModelConfig {
  readonly arch: Arch;
  readonly vocab: number;
  /** Model width C. */
  readonly dim: number;
  readonly layers: number;
  /** Query heads H. */
  readonly heads: number;
  /** Key/value heads Hkv (grouped-query attention when < heads; H % Hkv = 0). */
  readonly kvHeads: number;
  /** Per-head width hd (H·hd need not equal C, e.g. when config.json sets head_dim). */
  readonly headDim: number;
  /** MLP width F. */
  readonly hidden: number;
  /** Longest sequence the positions support (learned table size for gpt2). */
  readonly maxPositions: number;
  readonly norm: "layernorm" | "rmsnorm";
  readonly normEps: number;
  readonly act: "gelu_tanh" | "silu";
  readonly positions: "learned" | "rope";
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /** q, k, v projections have biases (gpt2, qwen2; llama with attention_bias). */
  readonly qkvBias: boolean;
  /** The attention output projection has a bias (gpt2; llama with attention_bias). */
  readonly oBias: boolean;
  /** MLP linears have biases (gpt2; llama with mlp_bias). */
  readonly mlpBias: boolean;
  /** lm_head shares the embedding matrix (no "lm_head.weight" in the weights). */
  readonly tiedEmbeddings: boolean;
  readonly bosId?: number;
  /** Generation stops at any of these. */
  readonly eosIds: readonly number[];
}

/**
 * The LLaMA block as llama2.c's run.c and the tiny base (pipeline/base/tiny.ts) build it:
 * RMSNorm ε = 1e-5, SwiGLU, RoPE θ = 10000 unscaled, no biases.
 */
export const LLAMA_BLOCK = {
  norm: "rmsnorm",
  normEps: 1e-5,
  act: "silu",
  positions: "rope",
  ropeTheta: 10000,
  ropeScaling: { type: "default" },
  qkvBias: false,
  oBias: false,
  mlpBias: false,
} as const satisfies Partial<ModelConfig>;

type Json = Record<string, unknown>;

/** Field readers that name the file and field in their errors. */
function reader(json: Json, where: string) {
  const num = (field: string, fallback?: number): number => {
    const v = json[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ModelError(`${where}: field "${field}" is missing; it must be a number`);
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new ModelError(`${where}: field "${field}" must be a number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const int = (field: string, fallback?: number): number => {
    const v = num(field, fallback);
    if (!Number.isInteger(v) || v <= 0) {
      throw new ModelError(`${where}: field "${field}" must be a positive integer, got ${v}`);
    }
    return v;
  };
  /** An optional field of one JSON type (`what` in words, for the error). */
  const optional = <T>(field: string, fallback: T, is: (v: unknown) => v is T, what: string) => {
    const v = json[field];
    if (v === undefined || v === null) return fallback;
    if (!is(v)) throw new ModelError(`${where}: field "${field}" must be ${what}, got ${v}`);
    return v;
  };
  const bool = (field: string, fallback: boolean): boolean =>
    optional(field, fallback, (v) => typeof v === "boolean", "true or false");
  const str = (field: string, fallback: string): string =>
    optional(field, fallback, (v) => typeof v === "string", "a string");
  return { num, int, bool, str };
}

/** bos_token_id / eos_token_id: an int, a list of ints, or absent. */
function tokenIds(json: Json, field: string, where: string): number[] {
  const v = json[field];
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list) {
    if (!Number.isInteger(x) || x < 0) {
      throw new ModelError(`${where}: "${field}" must be a token id or a list of them, got ${v}`);
    }
  }
  return list as number[];
}

function parseRopeScaling(json: Json, maxPositions: number, where: string): RopeScaling {
  const rs = json.rope_scaling;
  if (rs === undefined || rs === null) return { type: "default" };
  if (typeof rs !== "object") {
    throw new ModelError(`${where}: "rope_scaling" must be an object or null`);
  }
  const r = rs as Json;
  const type = (r.rope_type ?? r.type) as string | undefined;
  const at = `${where}: rope_scaling`;
  const { num, bool } = reader(r, at);
  const factor = () => {
    const f = num("factor");
    if (f <= 0) throw new ModelError(`${at}.factor must be > 0, got ${f}`);
    return f;
  };
  switch (type) {
    case "default":
      return { type: "default" };
    case "linear":
      return { type: "linear", factor: factor() };
    case "llama3":
      return {
        type: "llama3",
        factor: factor(),
        lowFreqFactor: num("low_freq_factor"),
        highFreqFactor: num("high_freq_factor"),
        originalMaxPositions: num("original_max_position_embeddings"),
      };
    case "yarn": {
      const f = factor();
      const mscale = (scale: number, m = 1) => scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
      // HF _compute_yarn_parameters: attention_factor, else from mscale/mscale_all_dim.
      const m = r.mscale as number | undefined, mAll = r.mscale_all_dim as number | undefined;
      const attentionFactor = typeof r.attention_factor === "number"
        ? r.attention_factor
        : m && mAll
        ? mscale(f, m) / mscale(f, mAll)
        : mscale(f);
      return {
        type: "yarn",
        factor: f,
        originalMaxPositions: num("original_max_position_embeddings", maxPositions),
        betaFast: num("beta_fast", 32),
        betaSlow: num("beta_slow", 1),
        attentionFactor,
        truncate: bool("truncate", true),
      };
    }
    default:
      throw new ModelError(
        `${at}: type ${JSON.stringify(type)} is not supported; supported: ` +
          `${SUPPORTED_ROPE_SCALING.join(", ")} (or remove rope_scaling)`,
      );
  }
}

/** ModelConfig from the parsed contents of a HF `config.json` (`where` names the file). */
export function parseHfConfig(json: Json, where = "config.json"): ModelConfig {
  const type = json.model_type;
  if (typeof type !== "string" || !SUPPORTED_MODEL_TYPES.includes(type as Arch)) {
    throw new ModelError(
      `${where}: model_type ${JSON.stringify(type)} is not supported; supported: ` +
        `${SUPPORTED_MODEL_TYPES.join(", ")}`,
    );
  }
  const cfg = type === "gpt2" ? gpt2Config(json, where) : ropeConfig(type as Arch, json, where);
  validateConfig(cfg, where);
  return cfg;
}

function gpt2Config(json: Json, where: string): ModelConfig {
  const { num, int, bool, str } = reader(json, where);
  const act = str("activation_function", "gelu_new");
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    throw new ModelError(
      `${where}: activation_function "${act}" is not supported for gpt2; use gelu_new ` +
        `(GPT-2's tanh GELU) or gelu_pytorch_tanh`,
    );
  }
  if (bool("scale_attn_by_inverse_layer_idx", false)) {
    throw new ModelError(`${where}: scale_attn_by_inverse_layer_idx=true is not supported`);
  }
  if (!bool("scale_attn_weights", true)) {
    throw new ModelError(`${where}: scale_attn_weights=false is not supported`);
  }
  if (!bool("tie_word_embeddings", true)) {
    throw new ModelError(`${where}: gpt2 with tie_word_embeddings=false is not supported`);
  }
  const dim = int("n_embd"), heads = int("n_head");
  const eos = tokenIds(json, "eos_token_id", where);
  const bos = tokenIds(json, "bos_token_id", where);
  return {
    arch: "gpt2",
    vocab: int("vocab_size"),
    dim,
    layers: int("n_layer"),
    heads,
    kvHeads: heads,
    headDim: dim / heads,
    hidden: int("n_inner", 4 * dim),
    maxPositions: int("n_positions"),
    norm: "layernorm",
    normEps: num("layer_norm_epsilon", 1e-5),
    act: "gelu_tanh",
    positions: "learned",
    ropeTheta: 0,
    ropeScaling: { type: "default" },
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tiedEmbeddings: true,
    bosId: bos[0],
    eosIds: eos,
  };
}

function ropeConfig(arch: Arch, json: Json, where: string): ModelConfig {
  const { num, int, bool, str } = reader(json, where);
  const act = str("hidden_act", "silu");
  if (act !== "silu") {
    throw new ModelError(`${where}: hidden_act "${act}" is not supported for ${arch}; use silu`);
  }
  if (arch === "qwen2" && bool("use_sliding_window", false)) {
    throw new ModelError(
      `${where}: use_sliding_window=true is not supported; set it to false (full attention)`,
    );
  }
  const dim = int("hidden_size"), heads = int("num_attention_heads");
  const maxPositions = int("max_position_embeddings");
  const attnBias = arch === "llama" && bool("attention_bias", false);
  const bos = tokenIds(json, "bos_token_id", where);
  return {
    arch,
    vocab: int("vocab_size"),
    dim,
    layers: int("num_hidden_layers"),
    heads,
    kvHeads: int("num_key_value_heads", heads),
    headDim: int("head_dim", dim / heads),
    hidden: int("intermediate_size"),
    maxPositions,
    norm: "rmsnorm",
    normEps: num("rms_norm_eps", 1e-6),
    act: "silu",
    positions: "rope",
    ropeTheta: num("rope_theta", 10000),
    ropeScaling: parseRopeScaling(json, maxPositions, where),
    qkvBias: arch === "qwen2" || attnBias,
    oBias: attnBias,
    mlpBias: arch === "llama" && bool("mlp_bias", false),
    // Qwen2's and LLaMA's HF classes default to untied embeddings.
    tiedEmbeddings: bool("tie_word_embeddings", false),
    bosId: bos[0],
    eosIds: tokenIds(json, "eos_token_id", where),
  };
}

/** Structural checks every config must pass (whatever made it). */
export function validateConfig(c: ModelConfig, where = "model config"): void {
  const fail = (msg: string) => {
    throw new ModelError(`${where}: ${msg}`);
  };
  for (const k of ["vocab", "dim", "layers", "heads", "kvHeads", "hidden", "maxPositions"]) {
    const v = (c as unknown as Record<string, number>)[k];
    if (!Number.isInteger(v) || v <= 0) fail(`${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(c.headDim) || c.headDim <= 0) {
    fail(`head width = ${c.headDim} is not a positive integer (dim ${c.dim} / heads ${c.heads})`);
  }
  if (c.heads % c.kvHeads !== 0) {
    fail(`heads ${c.heads} must be a multiple of key/value heads ${c.kvHeads}`);
  }
  if (c.positions === "rope" && c.headDim % 2 !== 0) {
    fail(`RoPE needs an even head width, got ${c.headDim}`);
  }
  if (!(c.normEps > 0)) fail(`norm epsilon must be > 0, got ${c.normEps}`);
  for (const id of [...c.eosIds, ...(c.bosId === undefined ? [] : [c.bosId])]) {
    if (id >= c.vocab) fail(`special token id ${id} is outside the vocabulary (${c.vocab})`);
  }
}

/** Parameter count of a config (weights as the canonical layout stores them). */
export function parameterCount(c: ModelConfig): number {
  const q = c.heads * c.headDim, kv = c.kvHeads * c.headDim;
  const norm = c.norm === "layernorm" ? 2 * c.dim : c.dim;
  const attn = c.dim * q + 2 * c.dim * kv + q * c.dim +
    (c.qkvBias ? q + 2 * kv : 0) + (c.oBias ? c.dim : 0);
  const mlp = c.act === "silu"
    ? 3 * c.dim * c.hidden + (c.mlpBias ? 2 * c.hidden + c.dim : 0)
    : 2 * c.dim * c.hidden + (c.mlpBias ? c.hidden + c.dim : 0);
  return c.vocab * c.dim + (c.positions === "learned" ? c.maxPositions * c.dim : 0) +
    c.layers * (2 * norm + attn + mlp) + norm + (c.tiedEmbeddings ? 0 : c.dim * c.vocab);
}

/** A HF config.json object for a config (parseHfConfig gives the config back). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  const ids = (v: readonly number[]) => v.length === 1 ? v[0] : v.length ? [...v] : null;
  if (c.arch === "gpt2") {
    return {
      model_type: "gpt2",
      architectures: ["GPT2LMHeadModel"],
      vocab_size: c.vocab,
      n_embd: c.dim,
      n_layer: c.layers,
      n_head: c.heads,
      n_inner: c.hidden,
      n_positions: c.maxPositions,
      n_ctx: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: "gelu_new",
      bos_token_id: c.bosId ?? null,
      eos_token_id: ids(c.eosIds),
      tie_word_embeddings: true,
      torch_dtype: "float32",
    };
  }
  const rs = c.ropeScaling;
  const ropeScaling = rs.type === "default"
    ? null
    : rs.type === "linear"
    ? { rope_type: "linear", factor: rs.factor }
    : rs.type === "llama3"
    ? {
      rope_type: "llama3",
      factor: rs.factor,
      low_freq_factor: rs.lowFreqFactor,
      high_freq_factor: rs.highFreqFactor,
      original_max_position_embeddings: rs.originalMaxPositions,
    }
    : {
      rope_type: "yarn",
      factor: rs.factor,
      original_max_position_embeddings: rs.originalMaxPositions,
      beta_fast: rs.betaFast,
      beta_slow: rs.betaSlow,
      attention_factor: rs.attentionFactor,
      truncate: rs.truncate,
    };
  const out: Record<string, unknown> = {
    model_type: c.arch,
    architectures: [c.arch === "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    vocab_size: c.vocab,
    hidden_size: c.dim,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: c.headDim,
    intermediate_size: c.hidden,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    hidden_act: "silu",
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId ?? null,
    eos_token_id: ids(c.eosIds),
    torch_dtype: "float32",
  };
  if (c.arch === "llama") {
    if (c.qkvBias !== c.oBias) {
      throw new ModelError("llama config: HF's attention_bias sets q/k/v and o biases together");
    }
    out.attention_bias = c.qkvBias;
    out.mlp_bias = c.mlpBias;
  } else {
    out.use_sliding_window = false;
    if (!c.qkvBias || c.oBias || c.mlpBias) {
      throw new ModelError("qwen2 config: needs q/k/v biases and no o or MLP biases");
    }
  }
  return out;
}
