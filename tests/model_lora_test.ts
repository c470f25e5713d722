/** LoRA bookkeeping (layout, init, scaling, functional updates) and PEFT export/import. */
import assert from "node:assert/strict";
import { type ModelConfig, parseHfConfig } from "../pipeline/model/config.ts";
import {
  defaultLoraConfig,
  initLora,
  loraLayout,
  loraView,
  toReferenceLora,
  withData,
} from "../pipeline/model/lora.ts";
import { exportPeft, importPeft } from "../pipeline/model/peft.ts";
import { forward } from "../pipeline/model/reference.ts";
import { readSafetensors, writeSafetensors } from "../pipeline/model/safetensors.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { assertClose, randn } from "./testing.ts";

const cfg = (arch: string): ModelConfig =>
  parseHfConfig(
    JSON.parse(
      Deno.readTextFileSync(
        new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url),
      ),
    ),
  );

Deno.test("lora: default targets every linear of every layer, A then B, (in,r)/(r,out)", () => {
  const c = cfg("qwen2"); // C 16, H 4 × hd 4, Hkv 2, F 40
  const { specs, size } = loraLayout(c, defaultLoraConfig(c, { rank: 3 }));
  assert.equal(specs.length, 2 * 7 * 2);
  assert.deepEqual(specs.slice(0, 4).map((s) => [s.name, s.shape]), [
    ["layers.0.q.lora_A", [16, 3]],
    ["layers.0.q.lora_B", [3, 16]],
    ["layers.0.k.lora_A", [16, 3]],
    ["layers.0.k.lora_B", [3, 8]],
  ]);
  assert.equal(specs.at(-1)!.name, "layers.1.down.lora_B");
  assert.equal(size, specs.reduce((n, s) => n + s.size, 0));
  specs.forEach((s, i) => assert.equal(s.offset, i ? specs[i - 1].offset + specs[i - 1].size : 0));
  const g = cfg("gpt2");
  const gs = loraLayout(g, defaultLoraConfig(g, { rank: 2 })).specs;
  assert.deepEqual(gs.slice(0, 2).map((s) => s.shape), [[16, 2], [2, 48]]); // fused c_attn
  // HF leaf names are accepted; GPT-2's c_proj is both projections, as in PEFT.
  const proj =
    loraLayout(g, defaultLoraConfig(g, { targetModules: ["c_proj"], topKLayers: 1 })).specs;
  assert.deepEqual(proj.map((s) => s.name), [
    "layers.1.o.lora_A",
    "layers.1.o.lora_B",
    "layers.1.proj.lora_A",
    "layers.1.proj.lora_B",
  ]);
  assert.throws(
    () => loraLayout(g, defaultLoraConfig(g, { targetModules: ["gate"] })),
    /target module "gate" is not a gpt2 linear; use qkv, o, fc, proj/,
  );
  assert.throws(
    () => loraLayout(c, defaultLoraConfig(c, { topKLayers: 3 })),
    /topKLayers must be 1..2/,
  );
});

Deno.test("lora: init is seeded Kaiming-uniform A (bound 1/√in), zero B; scaling rsLora vs plain", () => {
  const c = cfg("llama");
  const l = defaultLoraConfig(c, { rank: 4, alpha: 8, seed: 9 });
  const p = initLora(c, l);
  assert.equal(p.scale, 8 / 2); // alpha/√r
  assert.equal(initLora(c, { ...l, rsLora: false }).scale, 2); // alpha/r
  for (const s of p.specs) {
    const v = loraView(p, s.name);
    if (s.kind === "B") assert.ok(v.every((x) => x === 0), s.name);
    else {
      const bound = 1 / Math.sqrt(s.shape[0]);
      const max = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      assert.ok(max <= bound && max > 0.8 * bound, `${s.name}: max |A| ${max}, bound ${bound}`);
    }
  }
  assert.deepEqual(initLora(c, l).data, p.data);
  assert.notDeepEqual(initLora(c, { ...l, seed: 10 }).data, p.data);
  // B = 0: the adapted model is the base model.
  const m = { config: c, weights: initRandomWeights(c, 1, { std: 0.3 }) };
  const toks = [3, 9, 27];
  assertClose(forward(m, toks, { lora: toReferenceLora(p) }).logits, forward(m, toks).logits, {
    rtol: 0,
    atol: 0,
  });
});

Deno.test("lora: withData is a functional update (the old adapter is unchanged)", () => {
  const c = cfg("gpt2");
  const p = initLora(c, defaultLoraConfig(c, { rank: 2 }));
  const before = p.data.slice();
  const q = withData(p, p.data.map((x) => x + 1));
  assert.deepEqual(p.data, before);
  assert.equal(q.data[0], Math.fround(before[0] + 1));
  assert.equal(q.specs, p.specs);
  assert.throws(() => withData(p, new Float32Array(3)), /3 values for a layout of/);
});

const cases = [
  { arch: "gpt2", over: {} },
  { arch: "gpt2", over: { targetModules: ["o", "fc"], topKLayers: 1 } }, // needs the regex form
  { arch: "qwen2", over: { rsLora: false } },
  { arch: "llama", over: { targetModules: ["q", "v", "down"], topKLayers: 1 } },
];

for (const { arch, over } of cases) {
  Deno.test(`peft: export → import round-trips (${arch} ${JSON.stringify(over)})`, () => {
    const c = cfg(arch);
    const p0 = initLora(c, defaultLoraConfig(c, { rank: 3, alpha: 6, ...over }));
    const p = withData(p0, randn(p0.data.length, 42, -0.5, 0.5));
    const dir = Deno.makeTempDirSync();
    exportPeft(dir, c, p, { baseModel: `tiny-${arch}` });
    const j = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
    assert.equal(j.peft_type, "LORA");
    assert.equal(j.r, 3);
    assert.equal(j.lora_alpha, 6);
    assert.equal(j.use_rslora, p.config.rsLora);
    assert.equal(j.fan_in_fan_out, arch === "gpt2");
    const file = readSafetensors(`${dir}/adapter_model.safetensors`);
    assert.equal(file.size, p.specs.length);
    const back = importPeft(dir, c);
    assert.deepEqual(back.data, p.data);
    assert.equal(back.scale, p.scale);
    assert.deepEqual(back.specs, p.specs);
    // Same adapted logits.
    const m = { config: c, weights: initRandomWeights(c, 2, { std: 0.3 }) };
    const toks = [1, 4, 9, 16];
    assertClose(
      forward(m, toks, { lora: toReferenceLora(back) }).logits,
      forward(m, toks, { lora: toReferenceLora(p) }).logits,
      { rtol: 0, atol: 0 },
    );
    Deno.removeSync(dir, { recursive: true });
  });
}

Deno.test("peft: tensor names/shapes are PEFT's, target_modules as PEFT matches them", () => {
  const q = cfg("qwen2");
  const dir = Deno.makeTempDirSync();
  const p = initLora(q, defaultLoraConfig(q, { rank: 3, topKLayers: 1 }));
  exportPeft(dir, q, p);
  const file = readSafetensors(`${dir}/adapter_model.safetensors`);
  assert.deepEqual(
    file.get("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight")!.shape,
    [3, 16],
  );
  assert.deepEqual(
    file.get("base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight")!.shape,
    [8, 3],
  );
  assert.deepEqual(file.get("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight")!.shape, [
    3,
    40,
  ]);
  const j = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
  assert.deepEqual(j.target_modules, [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
  ]);
  assert.deepEqual(j.layers_to_transform, [1]);
  assert.equal(j.layers_pattern, "layers");

  const g = cfg("gpt2");
  const gp = initLora(g, defaultLoraConfig(g, { rank: 2, targetModules: ["qkv", "proj"] }));
  exportPeft(dir, g, gp);
  const gj = JSON.parse(Deno.readTextFileSync(`${dir}/adapter_config.json`));
  const re = new RegExp(gj.target_modules);
  assert.ok(re.test("transformer.h.0.attn.c_attn") && re.test("transformer.h.1.mlp.c_proj"));
  assert.ok(!re.test("transformer.h.0.attn.c_proj") && !re.test("transformer.h.0.mlp.c_fc"));
  const gfile = readSafetensors(`${dir}/adapter_model.safetensors`);
  assert.deepEqual(gfile.get("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight")!.shape, [
    48,
    2,
  ]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("peft: import rejects foreign tensors, wrong ranks and non-LoRA adapters", () => {
  const c = cfg("llama");
  const dir = Deno.makeTempDirSync();
  const p = initLora(c, defaultLoraConfig(c, { rank: 2 }));
  exportPeft(dir, c, p);
  const cfgText = Deno.readTextFileSync(`${dir}/adapter_config.json`);
  Deno.writeTextFileSync(`${dir}/adapter_config.json`, cfgText.replace('"r": 2', '"r": 3'));
  assert.throws(() => importPeft(dir, c), /has shape \[2,24\]; expected \[3,24\] \(r = 3\)/);
  Deno.writeTextFileSync(`${dir}/adapter_config.json`, cfgText.replace('"LORA"', '"IA3"'));
  assert.throws(() => importPeft(dir, c), /peft_type "IA3" is not supported/);
  Deno.writeTextFileSync(`${dir}/adapter_config.json`, cfgText);
  const t = readSafetensors(`${dir}/adapter_model.safetensors`);
  t.set("base_model.model.model.layers.0.self_attn.rotary.lora_A.weight", {
    shape: [1],
    data: new Float32Array(1),
  });
  writeSafetensors(`${dir}/adapter_model.safetensors`, t);
  assert.throws(
    () => importPeft(dir, c),
    /tensor "base_model.model.model.layers.0.self_attn.rotary.lora_A.weight" is not a LoRA A\/B/,
  );
  Deno.removeSync(dir, { recursive: true });
});
