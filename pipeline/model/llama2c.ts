/**
 * llama2.c checkpoints (karpathy/llama2.c, legacy "version 0" export as used by
 * stories260K.bin): 7 int32 header fields (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size — negative when the classifier is not shared — seq_len), then float32 weights
 * in run.c's order. llama2.c rotates interleaved pairs (x[2j], x[2j+1]); we permute the q/k
 * output rows at load to HF's half-split layout exactly as HF's convert_llama_weights_to_hf
 * does, so one RoPE convention serves every model.
 */
import { LLAMA_BLOCK, type ModelConfig, validateConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { type Model, tensor, validateWeights, type Weights } from "./weights.ts";

/** Header of a llama2.c checkpoint. */
export interface Llama2cHeader {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly vocab: number;
  readonly seqLen: number;
  readonly sharedClassifier: boolean;
}

const MAGIC_V1 = 0x616b3432; // "ak42": llama2.c's newer export versions

export function parseLlama2cHeader(bytes: Uint8Array, path: string): Llama2cHeader {
  if (bytes.length < 28) {
    throw new ModelError(`${path}: ${bytes.length} bytes is too short for a llama2.c header`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 28);
  if (dv.getUint32(0, true) === MAGIC_V1) {
    throw new ModelError(
      `${path}: llama2.c export version ≥ 1 (magic "ak42") is not supported; export with ` +
        `llama2.c's legacy format (export.py --version 0)`,
    );
  }
  const f = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  const [dim, hiddenDim, layers, heads, kvHeads, vocab, seqLen] = f;
  const names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
  f.forEach((v, i) => {
    if (i !== 5 && v <= 0 || i === 5 && v === 0) {
      throw new ModelError(
        `${path}: header field ${names[i]} = ${v} is not valid (not a llama2.c checkpoint?)`,
      );
    }
  });
  return {
    dim,
    hiddenDim,
    layers,
    heads,
    kvHeads,
    vocab: Math.abs(vocab),
    seqLen,
    sharedClassifier: vocab > 0,
  };
}

/** ModelConfig of a llama2.c model (run.c's constants: θ = 10000, RMSNorm ε = 1e-5). */
export function llama2cConfig(h: Llama2cHeader, where: string): ModelConfig {
  const c: ModelConfig = {
    arch: "llama",
    vocab: h.vocab,
    dim: h.dim,
    layers: h.layers,
    heads: h.heads,
    kvHeads: h.kvHeads,
    headDim: h.dim / h.heads,
    hidden: h.hiddenDim,
    maxPositions: h.seqLen,
    ...LLAMA_BLOCK,
    tiedEmbeddings: h.sharedClassifier,
    bosId: 1,
    // llama2.c's training data puts BOS (1) between stories and run.c stops there; EOS (2)
    // is the SentencePiece end token.
    eosIds: [2, 1],
  };
  validateConfig(c, where);
  return c;
}

/**
 * (out, in) PyTorch weight whose output rows hold interleaved rotary pairs → our (in, out)
 * with half-split columns: row h·hd + 2j + p goes to column h·hd + p·hd/2 + j (HF's permute).
 */
function permutedTranspose(
  src: Float32Array,
  heads: number,
  hd: number,
  inn: number,
): Float32Array {
  const out = heads * hd, dst = new Float32Array(out * inn), half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let p = 0; p < 2; p++) {
        const row = h * hd + 2 * j + p, col = h * hd + p * half + j;
        for (let i = 0; i < inn; i++) dst[i * out + col] = src[row * inn + i];
      }
    }
  }
  return dst;
}

function plainTranspose(src: Float32Array, out: number, inn: number): Float32Array {
  const dst = new Float32Array(out * inn);
  for (let r = 0; r < out; r++) for (let i = 0; i < inn; i++) dst[i * out + r] = src[r * inn + i];
  return dst;
}

/** Parse a whole llama2.c checkpoint from its bytes. */
export function parseLlama2c(bytes: Uint8Array, path: string): Model {
  const h = parseLlama2cHeader(bytes, path);
  const c = llama2cConfig(h, path);
  const C = c.dim, L = c.layers, F = c.hidden, V = c.vocab, hd = c.headDim;
  const kv = c.kvHeads * hd;
  const sizes = {
    embed: V * C,
    rmsAtt: L * C,
    wq: L * C * C,
    wk: L * kv * C,
    wv: L * kv * C,
    wo: L * C * C,
    rmsFfn: L * C,
    w1: L * F * C,
    w2: L * C * F,
    w3: L * F * C,
    rmsFinal: C,
    freqCis: c.maxPositions * hd, // real + imag halves; unused (we compute RoPE)
    cls: h.sharedClassifier ? 0 : V * C,
  };
  const floats = Object.values(sizes).reduce((a, b) => a + b, 0);
  if (bytes.length !== 28 + 4 * floats) {
    throw new ModelError(
      `${path}: ${bytes.length} bytes, but the header (dim ${C}, hidden ${F}, ${L} layers, ` +
        `${c.heads} heads, ${c.kvHeads} kv heads, vocab ${V}, seq ${c.maxPositions}, ` +
        `${h.sharedClassifier ? "shared" : "separate"} classifier) needs ${28 + 4 * floats} ` +
        `(truncated or a different format?)`,
    );
  }
  const all = new Float32Array(bytes.slice(28).buffer);
  let at = 0;
  const take = (n: number) => all.subarray(at, at += n);
  const w: Weights = new Map();
  w.set("embed", tensor([V, C], take(sizes.embed).slice()));
  const perLayer = (n: number) => {
    const block = take(n), each = n / L;
    return Array.from({ length: L }, (_, l) => block.subarray(l * each, (l + 1) * each));
  };
  const rmsAtt = perLayer(sizes.rmsAtt), wq = perLayer(sizes.wq), wk = perLayer(sizes.wk);
  const wv = perLayer(sizes.wv), wo = perLayer(sizes.wo), rmsFfn = perLayer(sizes.rmsFfn);
  const w1 = perLayer(sizes.w1), w2 = perLayer(sizes.w2), w3 = perLayer(sizes.w3);
  for (let l = 0; l < L; l++) {
    const p = `layers.${l}`;
    w.set(`${p}.norm1.weight`, tensor([C], rmsAtt[l].slice()));
    w.set(`${p}.q.weight`, tensor([C, C], permutedTranspose(wq[l], c.heads, hd, C)));
    w.set(`${p}.k.weight`, tensor([C, kv], permutedTranspose(wk[l], c.kvHeads, hd, C)));
    w.set(`${p}.v.weight`, tensor([C, kv], plainTranspose(wv[l], kv, C)));
    w.set(`${p}.o.weight`, tensor([C, C], plainTranspose(wo[l], C, C)));
    w.set(`${p}.norm2.weight`, tensor([C], rmsFfn[l].slice()));
    w.set(`${p}.gate.weight`, tensor([C, F], plainTranspose(w1[l], F, C))); // w1
    w.set(`${p}.down.weight`, tensor([F, C], plainTranspose(w2[l], C, F))); // w2
    w.set(`${p}.up.weight`, tensor([C, F], plainTranspose(w3[l], F, C))); // w3
  }
  w.set("norm_f.weight", tensor([C], take(sizes.rmsFinal).slice()));
  take(sizes.freqCis);
  if (!h.sharedClassifier) {
    w.set("lm_head.weight", tensor([C, V], plainTranspose(take(sizes.cls), V, C)));
  }
  validateWeights(c, w, path);
  return { config: c, weights: w };
}

/** Read a llama2.c `.bin` checkpoint into the canonical layout. */
export function readLlama2c(path: string): Model {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new ModelError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseLlama2c(bytes, path);
}
