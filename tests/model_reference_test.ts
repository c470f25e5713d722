/**
 * The float64 reference decoder on tiny random gpt2 / qwen2 / llama configs: KV cache vs full
 * recompute, batched prompts of different lengths, LoRA vs merged weights (GPT-2's fused
 * c_attn included), grouped-query attention vs duplicated heads, RoPE scaling tables.
 */
import assert from "node:assert/strict";
import { type ModelConfig, parseHfConfig } from "../pipeline/model/config.ts";
import {
  forward,
  generateGreedy,
  generateGreedyBatch,
  KvCache,
  type ReferenceLora,
  tokenNll,
} from "../pipeline/model/reference.ts";
import { loadHfModel } from "../pipeline/model/hf_loader.ts";
import { ropeInvFreq } from "../pipeline/model/rope.ts";
import {
  initRandomWeights,
  type Model,
  type Tensor,
  type Weights,
} from "../pipeline/model/weights.ts";
import { assertClose, randn } from "./testing.ts";

const ARCHS = ["gpt2", "qwen2", "llama"] as const;

function fixtureConfig(arch: string): ModelConfig {
  const url = new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url);
  return parseHfConfig(JSON.parse(Deno.readTextFileSync(url)));
}

/** Weights large enough (std 0.3) that greedy paths are not flat. */
function tinyModel(arch: string, seed = 1): Model {
  const config = fixtureConfig(arch);
  return { config, weights: initRandomWeights(config, seed, { std: 0.3, perturbAll: true }) };
}

const tokens = [5, 17, 42, 3, 3, 60, 11, 29, 8];

for (const arch of ARCHS) {
  Deno.test(`reference ${arch}: cached forward in pieces equals one full forward`, () => {
    const m = tinyModel(arch);
    const full = forward(m, tokens);
    assert.equal(full.logits.length, tokens.length * m.config.vocab);
    assert.equal(full.hidden.length, tokens.length * m.config.dim);
    const cache = new KvCache(m.config, 32);
    const a = forward(m, tokens.slice(0, 4), { cache });
    const b = forward(m, tokens.slice(4, 5), { cache });
    const c = forward(m, tokens.slice(5), { cache });
    assert.equal(cache.length, tokens.length);
    const pieces = new Float64Array([...a.logits, ...b.logits, ...c.logits]);
    assertClose(pieces, full.logits, { rtol: 1e-12, atol: 1e-12, label: `${arch} logits` });
    const last = forward(m, tokens, { logits: "last" });
    assertClose(last.logits, full.logits.subarray((tokens.length - 1) * m.config.vocab), {
      rtol: 0,
      atol: 0,
      label: "last row",
    });
  });

  Deno.test(`reference ${arch}: greedy with and without KV cache, batched prompts of different lengths`, () => {
    const m = tinyModel(arch, 2);
    const prompts = [[7], [1, 2, 3, 4], tokens];
    const opts = { maxNewTokens: 10, stopIds: [] as number[] };
    const cached = generateGreedyBatch(m, prompts, opts);
    const plain = generateGreedyBatch(m, prompts, { ...opts, useCache: false });
    assert.deepEqual(cached, plain);
    prompts.forEach((p, i) => assert.deepEqual(generateGreedy(m, p, opts), cached[i]));
    for (const g of cached) {
      assert.equal(g.tokens.length, 10);
      assert.equal(g.stop, "max_tokens");
    }
    // Not a constant sequence: the model under test actually depends on its input.
    assert.ok(new Set(cached.map((g) => g.tokens.join())).size > 1);
    // A stop token ends generation and is not returned.
    const stopAt = cached[1].tokens[3];
    const stopped = generateGreedy(m, prompts[1], { maxNewTokens: 10, stopIds: [stopAt] });
    assert.equal(stopped.stop, "eos");
    assert.deepEqual(stopped.tokens, cached[1].tokens.slice(0, cached[1].tokens.indexOf(stopAt)));
  });
}

Deno.test("reference gpt2: generation stops at the learned position table's end", () => {
  const m = tinyModel("gpt2", 3);
  const g = generateGreedy(m, tokens, { maxNewTokens: 100, stopIds: [] });
  assert.equal(g.stop, "max_positions");
  assert.equal(tokens.length + g.tokens.length, m.config.maxPositions);
});

/** W (in,out) += s·A (in,r)·B (r,out)[:, col0 : col0+out]. */
function merge(W: Tensor, A: Tensor, B: Tensor, s: number, col0 = 0): Tensor {
  const [inn, out] = W.shape, r = A.shape[1], bw = B.shape[1];
  const d = W.data.slice();
  for (let i = 0; i < inn; i++) {
    for (let j = 0; j < out; j++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += A.data[i * r + k] * B.data[k * bw + col0 + j];
      d[i * out + j] += s * acc;
    }
  }
  return { shape: W.shape, data: d };
}

for (const arch of ARCHS) {
  Deno.test(`reference ${arch}: LoRA (B = 0 → base; random → merged weights)`, () => {
    const m = tinyModel(arch, 4);
    const c = m.config, r = 3, s = 0.7;
    const modules = arch === "gpt2"
      ? ["qkv", "o", "fc", "proj"]
      : ["q", "k", "v", "o", "gate", "up", "down"];
    const shapeOf = (mod: string): [number, number] => {
      if (mod === "qkv") return [c.dim, 3 * c.dim];
      const [inn, out] = m.weights.get(`layers.0.${mod}.weight`)!.shape;
      return [inn, out];
    };
    const zero = new Map<string, Tensor>(), rand = new Map<string, Tensor>();
    let seed = 100;
    for (let l = 0; l < c.layers; l++) {
      for (const mod of modules) {
        const [inn, out] = shapeOf(mod);
        const A = { shape: [inn, r], data: randn(inn * r, seed++, -0.3, 0.3) };
        zero.set(`layers.${l}.${mod}.lora_A`, A);
        zero.set(`layers.${l}.${mod}.lora_B`, { shape: [r, out], data: new Float32Array(r * out) });
        rand.set(`layers.${l}.${mod}.lora_A`, A);
        rand.set(`layers.${l}.${mod}.lora_B`, {
          shape: [r, out],
          data: randn(r * out, seed++, -0.3, 0.3),
        });
      }
    }
    const base = forward(m, tokens).logits;
    const zeroLora: ReferenceLora = { scale: s, tensors: zero };
    assertClose(forward(m, tokens, { lora: zeroLora }).logits, base, {
      rtol: 0,
      atol: 0,
      label: "B=0",
    });

    const merged: Weights = new Map(m.weights);
    for (let l = 0; l < c.layers; l++) {
      for (const mod of modules) {
        const A = rand.get(`layers.${l}.${mod}.lora_A`)!,
          B = rand.get(`layers.${l}.${mod}.lora_B`)!;
        const parts = mod === "qkv"
          ? [["q", 0], ["k", c.dim], ["v", 2 * c.dim]] as const
          : [[mod, 0]] as const;
        for (const [lin, col0] of parts) {
          const name = `layers.${l}.${lin}.weight`;
          merged.set(name, merge(merged.get(name)!, A, B, s, col0));
        }
      }
    }
    const withLora = forward(m, tokens, { lora: { scale: s, tensors: rand } }).logits;
    // float32 rounding of the merged weights bounds the agreement.
    assertClose(withLora, forward({ config: c, weights: merged }, tokens).logits, {
      rtol: 1e-5,
      atol: 1e-5,
      label: `${arch} LoRA vs merged`,
    });
    let diff = 0;
    for (let i = 0; i < base.length; i++) diff = Math.max(diff, Math.abs(withLora[i] - base[i]));
    assert.ok(diff > 1e-2, `LoRA changed the logits by only ${diff}`);
  });
}

Deno.test("reference qwen2: grouped-query attention equals duplicated key/value heads", () => {
  const m = tinyModel("qwen2", 5);
  const c = m.config, hd = c.headDim, group = c.heads / c.kvHeads;
  const full: ModelConfig = { ...c, kvHeads: c.heads };
  const w: Weights = new Map(m.weights);
  for (let l = 0; l < c.layers; l++) {
    for (const n of ["k", "v"]) {
      const W = m.weights.get(`layers.${l}.${n}.weight`)!,
        b = m.weights.get(`layers.${l}.${n}.bias`)!;
      const inn = W.shape[0], kvw = c.kvHeads * hd, fw = c.heads * hd;
      const Wd = new Float32Array(inn * fw), bd = new Float32Array(fw);
      for (let a = 0; a < c.heads; a++) {
        const src = Math.floor(a / group) * hd;
        for (let e = 0; e < hd; e++) {
          bd[a * hd + e] = b.data[src + e];
          for (let i = 0; i < inn; i++) Wd[i * fw + a * hd + e] = W.data[i * kvw + src + e];
        }
      }
      w.set(`layers.${l}.${n}.weight`, { shape: [inn, fw], data: Wd });
      w.set(`layers.${l}.${n}.bias`, { shape: [fw], data: bd });
    }
  }
  assertClose(forward({ config: full, weights: w }, tokens).logits, forward(m, tokens).logits, {
    rtol: 1e-12,
    atol: 1e-12,
    label: "GQA",
  });
});

Deno.test("rope: scaling tables (factor 1 = default; llama3 keeps short, divides long waves)", () => {
  const c = fixtureConfig("qwen2");
  const plain = ropeInvFreq(c);
  assert.equal(plain[1], 1 / Math.pow(1e6, 2 / c.headDim));
  assertClose(ropeInvFreq({ ...c, ropeScaling: { type: "linear", factor: 1 } }), plain, {
    rtol: 0,
    atol: 0,
  });
  assertClose(
    ropeInvFreq({ ...c, ropeScaling: { type: "linear", factor: 4 } }),
    plain.map((f) => f / 4),
    {
      rtol: 1e-15,
      atol: 0,
    },
  );
  const yarn1 = {
    type: "yarn" as const,
    factor: 1,
    originalMaxPositions: 128,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 1,
    truncate: true,
  };
  assertClose(ropeInvFreq({ ...c, ropeScaling: yarn1 }), plain, { rtol: 1e-15, atol: 0 });
  const l = fixtureConfig("llama"); // llama3: factor 8, waves 16/4 .. 16/1
  const base = ropeInvFreq({ ...l, ropeScaling: { type: "default" } }), s = ropeInvFreq(l);
  base.forEach((f, j) => {
    const wave = 2 * Math.PI / f;
    if (wave < 4) assert.equal(s[j], f);
    else if (wave > 16) assert.equal(s[j], f / 8);
    else assert.ok(s[j] < f && s[j] > f / 8);
  });
});

for (const arch of ARCHS) {
  Deno.test(`reference ${arch}: logits match the NumPy float64 golden (HF layout, F32/F16/BF16 file)`, () => {
    const dir = new URL(`../fixtures/models/tiny-${arch}`, import.meta.url).pathname;
    const golden = JSON.parse(Deno.readTextFileSync(`${dir}/golden.json`));
    const m = loadHfModel(dir);
    const { logits } = forward(m, golden.tokens);
    assertClose(logits, golden.logits.flat(), {
      rtol: 1e-9,
      atol: 1e-9,
      label: `${arch} vs numpy`,
    });
  });
}

Deno.test("reference: tokenNll is −log softmax at the target", () => {
  const logits = new Float64Array([0, Math.log(3), 1000, 1000]);
  const nll = tokenNll(logits, 2, [1, 0]);
  assert.ok(Math.abs(nll[0] - Math.log(4 / 3)) < 1e-12);
  assert.ok(Math.abs(nll[1] - Math.log(2)) < 1e-12);
  assert.throws(() => tokenNll(logits, 2, [1]), /4 logits for 1 targets/);
});
