/**
 * llama2.c checkpoints and tokenizer: a synthetic checkpoint checked against a run.c-style
 * forward (interleaved RoPE, written out here independently of reference.ts), and the golden
 * greedy continuation of stories260K (skips when ../shared is absent).
 */
import assert from "node:assert/strict";
import { parseLlama2c, readLlama2c } from "../pipeline/model/llama2c.ts";
import {
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
} from "../pipeline/model/llama2c_tokenizer.ts";
import { forward, generateGreedy } from "../pipeline/model/reference.ts";
import { assertClose, randn, sharedTest, STORIES_GOLDEN as GOLDEN } from "./testing.ts";

/** A llama2.c legacy checkpoint with random weights: header + float32 blocks. */
function syntheticCheckpoint(h: number[], shared: boolean, seed: number) {
  const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = h;
  const hs = dim / heads, kv = kvHeads * hs;
  const sizes = [
    vocab * dim,
    layers * dim,
    layers * dim * dim,
    layers * kv * dim,
    layers * kv * dim,
    layers * dim * dim,
    layers * dim,
    layers * hidden * dim,
    layers * dim * hidden,
    layers * hidden * dim,
    dim,
    seqLen * hs,
    shared ? 0 : vocab * dim,
  ];
  const floats = randn(sizes.reduce((a, b) => a + b), seed, -0.5, 0.5);
  const bytes = new Uint8Array(28 + floats.byteLength);
  const dv = new DataView(bytes.buffer);
  h.forEach((v, i) => dv.setInt32(4 * i, i === 5 && !shared ? -v : v, true));
  bytes.set(new Uint8Array(floats.buffer), 28);
  return { bytes, floats, sizes };
}

/** run.c's forward for one token at `pos`, in float64 (cache arrays grow per call). */
function runC(
  h: number[],
  blocks: Float32Array[],
  token: number,
  pos: number,
  kc: number[][][],
  vc: number[][][],
) {
  const [dim, hidden, layers, heads, kvHeads, vocab] = h;
  const [emb, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsF, , cls] = blocks;
  const hs = dim / heads, kvDim = kvHeads * hs, kvMul = heads / kvHeads;
  const matmul = (w: Float32Array, off: number, x: number[], n: number, d: number) =>
    Array.from({ length: d }, (_, i) => {
      let s = 0;
      for (let j = 0; j < n; j++) s += w[off + i * n + j] * x[j];
      return s;
    });
  const rms = (x: number[], w: Float32Array, off: number) => {
    const ss = 1 / Math.sqrt(x.reduce((a, b) => a + b * b, 0) / x.length + 1e-5);
    return x.map((v, i) => w[off + i] * ss * v);
  };
  let x = Array.from(emb.subarray(token * dim, (token + 1) * dim));
  for (let l = 0; l < layers; l++) {
    const xb = rms(x, rmsAtt, l * dim);
    const q = matmul(wq, l * dim * dim, xb, dim, dim);
    const k = matmul(wk, l * dim * kvDim, xb, dim, kvDim);
    const v = matmul(wv, l * dim * kvDim, xb, dim, kvDim);
    for (let i = 0; i < dim; i += 2) {
      const f = 1 / Math.pow(10000, (i % hs) / hs), c = Math.cos(pos * f), s = Math.sin(pos * f);
      for (const vec of i < kvDim ? [q, k] : [q]) {
        const a = vec[i], b = vec[i + 1];
        vec[i] = a * c - b * s;
        vec[i + 1] = a * s + b * c;
      }
    }
    (kc[l] ??= [])[pos] = k;
    (vc[l] ??= [])[pos] = v;
    const att = new Array(dim).fill(0);
    for (let hh = 0; hh < heads; hh++) {
      const g = Math.floor(hh / kvMul) * hs;
      const sc = Array.from({ length: pos + 1 }, (_, t) => {
        let d = 0;
        for (let e = 0; e < hs; e++) d += q[hh * hs + e] * kc[l][t][g + e];
        return d / Math.sqrt(hs);
      });
      const m = Math.max(...sc),
        ex = sc.map((s) => Math.exp(s - m)),
        z = ex.reduce((a, b) => a + b);
      for (let t = 0; t <= pos; t++) {
        for (let e = 0; e < hs; e++) att[hh * hs + e] += (ex[t] / z) * vc[l][t][g + e];
      }
    }
    const o = matmul(wo, l * dim * dim, att, dim, dim);
    x = x.map((v, i) => v + o[i]);
    const xf = rms(x, rmsFfn, l * dim);
    const a = matmul(w1, l * hidden * dim, xf, dim, hidden);
    const b = matmul(w3, l * hidden * dim, xf, dim, hidden);
    const hb = a.map((u, i) => (u / (1 + Math.exp(-u))) * b[i]);
    const d = matmul(w2, l * dim * hidden, hb, hidden, dim);
    x = x.map((v, i) => v + d[i]);
  }
  const xf = rms(x, rmsF, 0);
  return matmul(cls.length ? cls : emb, 0, xf, dim, vocab);
}

for (const shared of [true, false]) {
  Deno.test(`llama2c: synthetic checkpoint (${shared ? "shared" : "separate"} classifier) matches a run.c forward`, () => {
    const h = [16, 24, 2, 4, 2, 32, 12];
    const { bytes, floats, sizes } = syntheticCheckpoint(h, shared, shared ? 11 : 12);
    const model = parseLlama2c(bytes, "synthetic.bin");
    assert.equal(model.config.tiedEmbeddings, shared);
    assert.equal(model.config.kvHeads, 2);
    const blocks: Float32Array[] = [];
    let at = 0;
    for (const n of sizes) blocks.push(floats.subarray(at, at += n));
    const tokens = [1, 7, 30, 4, 4, 19];
    const kc: number[][][] = [], vc: number[][][] = [];
    const expected = tokens.flatMap((t, pos) => runC(h, blocks, t, pos, kc, vc));
    const { logits } = forward(model, tokens);
    assertClose(logits, expected, { rtol: 1e-9, atol: 1e-10, label: "logits" });
  });
}

Deno.test("llama2c: a truncated checkpoint or a v1 export gives a clear error", () => {
  const { bytes } = syntheticCheckpoint([16, 24, 2, 4, 2, 32, 12], true, 3);
  assert.throws(
    () => parseLlama2c(bytes.subarray(0, bytes.length - 4), "cut.bin"),
    /cut.bin: \d+ bytes, but the header .* needs \d+/,
  );
  const v1 = bytes.slice();
  new DataView(v1.buffer).setUint32(0, 0x616b3432, true);
  assert.throws(() => parseLlama2c(v1, "v1.bin"), /v1.bin: llama2.c export version ≥ 1/);
});

Deno.test("llama2c tokenizer: run.c merges by score, byte fallback, decode", () => {
  // A tiny vocabulary in tokenizer.bin layout: <unk>, <s>, </s>, 256 byte pieces, then words.
  const pieces = ["<unk>", "\n<s>\n", "\n</s>\n"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const words: [string, number][] = [[" ", -1], ["a", -2], ["b", -3], ["ab", -0.5], [" ab", -0.1], [
    "é",
    -4,
  ], [" b", -5]];
  const all = [...pieces.map((p) => [p, 0] as [string, number]), ...words];
  const enc = new TextEncoder();
  const parts: number[] = [];
  const push32 = (v: number, float = false) => {
    const b = new Uint8Array(4);
    const dv = new DataView(b.buffer);
    if (float) dv.setFloat32(0, v, true);
    else dv.setInt32(0, v, true);
    parts.push(...b);
  };
  push32(8);
  for (const [p, s] of all) {
    const b = enc.encode(p);
    push32(s, true);
    push32(b.length);
    parts.push(...b);
  }
  const tok = parseLlama2cTokenizer(new Uint8Array(parts), "tok.bin");
  const id = (p: string) => all.findIndex(([q]) => q === p);
  // " " a b → " " ab (the only scored pair) → " ab".
  assert.deepEqual(tok.encode("ab", { bos: true }), [1, id(" ab")]);
  // "é" is a piece; "☃" is not: its three UTF-8 bytes fall back to ids byte+3.
  assert.deepEqual(tok.encode("é☃"), [id(" "), id("é"), 0xe2 + 3, 0x98 + 3, 0x83 + 3]);
  assert.equal(tok.decode(tok.encode("é☃ab b", { bos: true })), "é☃ab b");
  assert.equal(tok.decode([1, id(" ab"), id(" b")]), "ab b");
});

sharedTest(
  "models/stories260K",
  "llama2c: stories260K greedy golden continuation (float64 reference, KV cache = no cache)",
  (dir) => {
    const model = readLlama2c(`${dir}/stories260K.bin`);
    const tok = readLlama2cTokenizer(`${dir}/tok512.bin`, model.config.vocab);
    assert.equal(tok.vocabSize, 512);
    const prompt = tok.encode("Once upon a time", { bos: true });
    assert.equal(tok.decode(prompt), "Once upon a time");
    const gen = generateGreedy(model, prompt, { maxNewTokens: 64 });
    const text = tok.decode([...prompt, ...gen.tokens]);
    // The golden paragraph, then the model starts a new line.
    assert.equal(text.slice(0, GOLDEN.length), GOLDEN);
    assert.equal(text[GOLDEN.length], "\n");
    const noCache = generateGreedy(model, prompt, { maxNewTokens: 64, useCache: false });
    assert.deepEqual(noCache.tokens, gen.tokens);
  },
);
