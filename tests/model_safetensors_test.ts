/** safetensors read/write, sharded directories, and the HF loader's checks. */
import assert from "node:assert/strict";
import { parseHfConfig } from "../pipeline/model/config.ts";
import { loadHfModel, saveHfModel } from "../pipeline/model/hf_loader.ts";
import { canonicalToHf } from "../pipeline/model/hf_names.ts";
import {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsDir,
  writeSafetensors,
} from "../pipeline/model/safetensors.ts";
import { initRandomWeights, type Tensor } from "../pipeline/model/weights.ts";
import { randn, sharedTest } from "./testing.ts";

const fixture = (arch: string) =>
  parseHfConfig(
    JSON.parse(
      Deno.readTextFileSync(
        new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url),
      ),
    ),
  );

const sample = (): [string, Tensor][] => [
  ["a", { shape: [3, 5], data: randn(15, 1) }],
  ["b.bias", { shape: [7], data: randn(7, 2, -100, 100) }],
  ["scalarish", { shape: [1], data: new Float32Array([1.5]) }],
];

Deno.test("safetensors: F32 round-trip is exact; F16/BF16 round within their precision", () => {
  const dir = Deno.makeTempDirSync();
  for (const [dtype, rtol] of [["F32", 0], ["F16", 1e-3], ["BF16", 8e-3]] as const) {
    const path = `${dir}/t-${dtype}.safetensors`;
    writeSafetensors(path, sample(), { dtype, metadata: { format: "pt" } });
    const back = readSafetensors(path);
    for (const [name, t] of sample()) {
      const r = back.get(name)!;
      assert.deepEqual(r.shape, t.shape);
      for (let i = 0; i < t.data.length; i++) {
        assert.ok(
          Math.abs(r.data[i] - t.data[i]) <= rtol * Math.abs(t.data[i]),
          `${dtype} ${name}[${i}]`,
        );
      }
    }
  }
  // The header is padded so the data starts 8-aligned, as the reference writer does.
  const bytes = encodeSafetensors(sample());
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("safetensors: truncated or corrupt files give a clear error naming the file", () => {
  const dir = Deno.makeTempDirSync();
  const good = encodeSafetensors(sample());
  const cut = `${dir}/cut.safetensors`;
  Deno.writeFileSync(cut, good.subarray(0, good.length - 10));
  assert.throws(
    () => readSafetensors(cut),
    (e: Error) => e.message.includes(cut) && /ends at data byte/.test(e.message),
  );
  const tiny = `${dir}/tiny.safetensors`;
  Deno.writeFileSync(tiny, good.subarray(0, 5));
  assert.throws(() => readSafetensors(tiny), /tiny.safetensors: 5 bytes is too short/);
  const headerCut = `${dir}/head.safetensors`;
  Deno.writeFileSync(headerCut, good.subarray(0, 40));
  assert.throws(
    () => readSafetensors(headerCut),
    /head.safetensors: header length \d+ does not fit/,
  );
  const junk = good.slice();
  junk[12] = 0x7b; // "{" inside the JSON
  const bad = `${dir}/junk.safetensors`;
  Deno.writeFileSync(bad, junk);
  assert.throws(() => readSafetensors(bad), /junk.safetensors: header is not valid JSON/);
  assert.throws(
    () => readSafetensors(`${dir}/absent.safetensors`),
    /absent.safetensors: cannot open/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("safetensors: sharded index directories are read and checked", () => {
  const dir = Deno.makeTempDirSync();
  const [a, b, c] = sample();
  writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [a, b]);
  writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [c]);
  const index = {
    metadata: { total_size: 0 },
    weight_map: {
      a: "model-00001-of-00002.safetensors",
      "b.bias": "model-00001-of-00002.safetensors",
      scalarish: "model-00002-of-00002.safetensors",
    },
  };
  Deno.writeTextFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(index));
  const all = readSafetensorsDir(dir);
  assert.deepEqual([...all.keys()].sort(), ["a", "b.bias", "scalarish"]);
  assert.deepEqual(all.get("scalarish")!.data, new Float32Array([1.5]));
  index.weight_map.scalarish = "model-00001-of-00002.safetensors";
  Deno.writeTextFileSync(`${dir}/model.safetensors.index.json`, JSON.stringify(index));
  assert.throws(() => readSafetensorsDir(dir), /tensor "scalarish" is not in shard/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("hf loader: save → load round-trips every architecture", () => {
  for (const arch of ["gpt2", "qwen2", "llama"]) {
    const config = fixture(arch);
    const weights = initRandomWeights(config, 5, { perturbAll: true });
    const dir = Deno.makeTempDirSync();
    saveHfModel(dir, { config, weights });
    const back = loadHfModel(dir);
    assert.deepEqual(back.config, config);
    for (const [n, t] of weights) assert.deepEqual(back.weights.get(n), t, `${arch} ${n}`);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("hf loader: linear weights are transposed (HF (out,in) → ours (in,out))", () => {
  const config = fixture("qwen2");
  const weights = initRandomWeights(config, 6);
  const hf = canonicalToHf(config, weights);
  const ours = weights.get("layers.1.k.weight")!; // (C, Hkv·hd) = (16, 8)
  const theirs = hf.get("model.layers.1.self_attn.k_proj.weight")!; // (8, 16)
  assert.deepEqual(theirs.shape, [8, 16]);
  assert.equal(theirs.data[3 * 16 + 5], ours.data[5 * 8 + 3]);
});

Deno.test("hf loader: missing, extra and mis-shaped tensors name the tensor and shape", () => {
  const config = fixture("llama");
  const hf = canonicalToHf(config, initRandomWeights(config, 7));
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(
    `${dir}/config.json`,
    Deno.readTextFileSync(new URL("../fixtures/models/tiny-llama/config.json", import.meta.url)),
  );
  const save = (m: Map<string, Tensor>) => writeSafetensors(`${dir}/model.safetensors`, m);
  const missing = new Map(hf);
  missing.delete("model.layers.1.mlp.up_proj.weight");
  save(missing);
  assert.throws(
    () => loadHfModel(dir),
    /tensor "model.layers.1.mlp.up_proj.weight" is missing; expected shape \[48,24\]/,
  );
  const extra = new Map(hf).set("model.layers.2.mlp.up_proj.weight", {
    shape: [1],
    data: new Float32Array(1),
  });
  save(extra);
  assert.throws(() => loadHfModel(dir), /unexpected tensor "model.layers.2.mlp.up_proj.weight"/);
  const shaped = new Map(hf).set("model.norm.weight", { shape: [25], data: new Float32Array(25) });
  save(shaped);
  assert.throws(
    () => loadHfModel(dir),
    /tensor "model.norm.weight" has shape \[25\]; expected \[24\]/,
  );
  const withBuffer = new Map(hf).set("model.layers.0.self_attn.rotary_emb.inv_freq", {
    shape: [3],
    data: new Float32Array(3),
  });
  save(withBuffer);
  loadHfModel(dir); // known buffers are ignored
  Deno.removeSync(dir, { recursive: true });
});

sharedTest(
  "models/gpt2-tiny-random",
  "hf loader: real HF GPT-2 directory (gpt2-tiny-random)",
  (gpt2Dir) => {
    const m = loadHfModel(gpt2Dir);
    assert.equal(m.config.arch, "gpt2");
    assert.equal(m.config.vocab, 50257);
    assert.equal(m.config.dim, 2);
    assert.deepEqual(m.weights.get("embed")!.shape, [50257, 2]);
    assert.deepEqual(m.weights.get("pos")!.shape, [1024, 2]);
    // c_attn (2, 6) split into q|k|v along the output axis.
    const raw = readSafetensors(`${gpt2Dir}/model.safetensors`);
    const cAttn = raw.get("transformer.h.0.attn.c_attn.weight")!.data;
    const v = m.weights.get("layers.0.v.weight")!.data;
    assert.deepEqual([...v], [cAttn[4], cAttn[5], cAttn[10], cAttn[11]]);
    const vb = m.weights.get("layers.0.v.bias")!.data;
    const cb = raw.get("transformer.h.0.attn.c_attn.bias")!.data;
    assert.deepEqual([...vb], [cb[4], cb[5]]);
  },
);
