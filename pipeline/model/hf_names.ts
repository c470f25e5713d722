/**
 * Hugging Face tensor names ↔ our canonical layout, for one config. Each HF tensor maps to
 * one or more canonical tensors by copy (GPT-2's Conv1D is already (in, out)), transpose (an
 * nn.Linear weight is (out, in)) or split (GPT-2's fused c_attn = q|k|v along the output).
 */
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { linearShape, transpose2d, type Weights } from "./weights.ts";
import type { Tensor } from "./weights.ts";

export interface HfEntry {
  /** HF name (GPT-2 without the optional "transformer." prefix). */
  readonly hf: string;
  readonly shape: readonly number[];
  readonly to: readonly string[];
  readonly op: "copy" | "transpose" | "split";
}

/** HF module path of a canonical linear of layer i (PEFT names adapters after these). */
export function hfLinearPath(c: ModelConfig, layer: number, linear: string): string {
  if (c.arch === "gpt2") {
    const m: Record<string, string> = {
      q: "attn.c_attn",
      k: "attn.c_attn",
      v: "attn.c_attn",
      qkv: "attn.c_attn",
      o: "attn.c_proj",
      fc: "mlp.c_fc",
      proj: "mlp.c_proj",
    };
    if (!m[linear]) throw new ModelError(`gpt2 has no linear "${linear}"`);
    return `transformer.h.${layer}.${m[linear]}`;
  }
  const attn = ["q", "k", "v", "o"].includes(linear);
  if (!attn && !["gate", "up", "down"].includes(linear)) {
    throw new ModelError(`${c.arch} has no linear "${linear}"`);
  }
  return `model.layers.${layer}.${attn ? "self_attn" : "mlp"}.${linear}_proj`;
}

/** Every HF tensor of a config, with its HF shape and where it goes. */
export function hfEntries(c: ModelConfig): HfEntry[] {
  const out: HfEntry[] = [];
  const add = (hf: string, shape: number[], to: string[], op: HfEntry["op"] = "copy") =>
    out.push({ hf, shape, to, op });
  const C = c.dim;
  if (c.arch === "gpt2") {
    add("wte.weight", [c.vocab, C], ["embed"]);
    add("wpe.weight", [c.maxPositions, C], ["pos"]);
    for (let i = 0; i < c.layers; i++) {
      const h = `h.${i}`, l = `layers.${i}`;
      add(`${h}.ln_1.weight`, [C], [`${l}.norm1.weight`]);
      add(`${h}.ln_1.bias`, [C], [`${l}.norm1.bias`]);
      const qkv = ["q", "k", "v"];
      add(`${h}.attn.c_attn.weight`, [C, 3 * C], qkv.map((n) => `${l}.${n}.weight`), "split");
      add(`${h}.attn.c_attn.bias`, [3 * C], qkv.map((n) => `${l}.${n}.bias`), "split");
      add(`${h}.attn.c_proj.weight`, [C, C], [`${l}.o.weight`]);
      add(`${h}.attn.c_proj.bias`, [C], [`${l}.o.bias`]);
      add(`${h}.ln_2.weight`, [C], [`${l}.norm2.weight`]);
      add(`${h}.ln_2.bias`, [C], [`${l}.norm2.bias`]);
      add(`${h}.mlp.c_fc.weight`, [C, c.hidden], [`${l}.fc.weight`]);
      add(`${h}.mlp.c_fc.bias`, [c.hidden], [`${l}.fc.bias`]);
      add(`${h}.mlp.c_proj.weight`, [c.hidden, C], [`${l}.proj.weight`]);
      add(`${h}.mlp.c_proj.bias`, [C], [`${l}.proj.bias`]);
    }
    add("ln_f.weight", [C], ["norm_f.weight"]);
    add("ln_f.bias", [C], ["norm_f.bias"]);
    return out;
  }
  add("model.embed_tokens.weight", [c.vocab, C], ["embed"]);
  for (let i = 0; i < c.layers; i++) {
    const l = `layers.${i}`;
    add(`model.layers.${i}.input_layernorm.weight`, [C], [`${l}.norm1.weight`]);
    for (const lin of ["q", "k", "v", "o", "gate", "up", "down"]) {
      const [inn, o] = linearShape(c, lin), path = hfLinearPath(c, i, lin);
      if (lin === "gate") {
        add(`model.layers.${i}.post_attention_layernorm.weight`, [C], [`${l}.norm2.weight`]);
      }
      add(`${path}.weight`, [o, inn], [`${l}.${lin}.weight`], "transpose");
      const bias = ["q", "k", "v"].includes(lin) ? c.qkvBias : lin === "o" ? c.oBias : c.mlpBias;
      if (bias) add(`${path}.bias`, [o], [`${l}.${lin}.bias`]);
    }
  }
  add("model.norm.weight", [C], ["norm_f.weight"]);
  if (!c.tiedEmbeddings) add("lm_head.weight", [c.vocab, C], ["lm_head.weight"], "transpose");
  return out;
}

/** Buffers and duplicates HF checkpoints may carry that a model does not need. */
export function ignorableHfTensor(c: ModelConfig, name: string): boolean {
  if (/\.attn\.(bias|masked_bias)$/.test(name)) return c.arch === "gpt2"; // GPT-2 mask buffers
  if (/rotary_emb\.inv_freq$/.test(name)) return true;
  return name === "lm_head.weight" && c.tiedEmbeddings; // tied: a copy of the embedding
}

/** Split the last axis of a (rows, parts·w) tensor into `parts` (rows, w) tensors. */
function splitCols(t: Tensor, parts: number): Tensor[] {
  const cols = t.shape[t.shape.length - 1], rows = t.data.length / cols, w = cols / parts;
  return Array.from({ length: parts }, (_, p) => {
    const d = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) {
      d.set(t.data.subarray(r * cols + p * w, r * cols + (p + 1) * w), r * w);
    }
    return { shape: t.shape.length === 1 ? [w] : [rows, w], data: d };
  });
}

/** Join tensors along the last axis (inverse of splitCols). */
function joinCols(ts: Tensor[]): Tensor {
  const w = ts[0].shape[ts[0].shape.length - 1], rows = ts[0].data.length / w;
  const cols = w * ts.length, d = new Float32Array(rows * cols);
  ts.forEach((t, p) => {
    for (let r = 0; r < rows; r++) d.set(t.data.subarray(r * w, (r + 1) * w), r * cols + p * w);
  });
  return { shape: ts[0].shape.length === 1 ? [cols] : [rows, cols], data: d };
}

/**
 * HF tensors (names without GPT-2's "transformer." prefix) → canonical weights. Missing,
 * extra or mis-shaped tensors throw, naming the tensor and the expected shape.
 */
export function hfToCanonical(c: ModelConfig, hf: Map<string, Tensor>, where: string): Weights {
  const w: Weights = new Map();
  const used = new Set<string>();
  for (const e of hfEntries(c)) {
    const t = hf.get(e.hf);
    if (!t) {
      throw new ModelError(`${where}: tensor "${e.hf}" is missing; expected shape [${e.shape}]`);
    }
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      throw new ModelError(
        `${where}: tensor "${e.hf}" has shape [${t.shape}]; expected [${e.shape}]`,
      );
    }
    used.add(e.hf);
    if (e.op === "copy") w.set(e.to[0], t);
    else if (e.op === "transpose") {
      w.set(e.to[0], {
        shape: [e.shape[1], e.shape[0]],
        data: transpose2d(t.data, e.shape[0], e.shape[1]),
      });
    } else splitCols(t, e.to.length).forEach((p, k) => w.set(e.to[k], p));
  }
  for (const name of hf.keys()) {
    if (!used.has(name) && !ignorableHfTensor(c, name)) {
      throw new ModelError(
        `${where}: unexpected tensor "${name}" for this ${c.arch} config (${c.layers} layers; ` +
          `check num_hidden_layers/n_layer, tie_word_embeddings and the bias settings)`,
      );
    }
  }
  return w;
}

/** Canonical weights → HF tensors (GPT-2 names get the "transformer." prefix). */
export function canonicalToHf(c: ModelConfig, w: Weights): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new ModelError(`weights: tensor "${n}" is missing`);
    return t;
  };
  for (const e of hfEntries(c)) {
    const name = c.arch === "gpt2" ? `transformer.${e.hf}` : e.hf;
    if (e.op === "copy") out.set(name, get(e.to[0]));
    else if (e.op === "transpose") {
      out.set(name, {
        shape: e.shape,
        data: transpose2d(get(e.to[0]).data, e.shape[1], e.shape[0]),
      });
    } else out.set(name, joinCols(e.to.map(get)));
  }
  return out;
}
