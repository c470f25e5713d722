/** ModelConfig parsing from HF config.json: the three architectures, rope scaling, errors. */
import assert from "node:assert/strict";
import {
  type ModelConfig,
  parameterCount,
  parseHfConfig,
  toHfConfig,
} from "../pipeline/model/config.ts";
import { expectedShapes, numel } from "../pipeline/model/weights.ts";

const fixture = (arch: string) =>
  JSON.parse(
    Deno.readTextFileSync(new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url)),
  );

Deno.test("model config: gpt2, qwen2 and llama fixtures parse to the expected fields", () => {
  const g = parseHfConfig(fixture("gpt2"));
  assert.equal(g.arch, "gpt2");
  assert.equal(g.hidden, 64); // n_inner null → 4·n_embd
  assert.equal(g.headDim, 8);
  assert.equal(g.positions, "learned");
  assert.equal(g.norm, "layernorm");
  assert.equal(g.act, "gelu_tanh");
  assert.ok(g.tiedEmbeddings && g.qkvBias && g.oBias && g.mlpBias);
  assert.deepEqual(g.eosIds, [63]);

  const q = parseHfConfig(fixture("qwen2"));
  assert.equal(q.arch, "qwen2");
  assert.equal(q.kvHeads, 2);
  assert.equal(q.headDim, 4);
  assert.equal(q.ropeTheta, 1e6);
  assert.ok(q.qkvBias && !q.oBias && !q.mlpBias && q.tiedEmbeddings);
  assert.equal(q.norm, "rmsnorm");

  const l = parseHfConfig(fixture("llama"));
  assert.equal(l.arch, "llama");
  assert.ok(!l.qkvBias && !l.tiedEmbeddings);
  assert.deepEqual(l.eosIds, [2, 63]);
  assert.equal(l.bosId, 1);
  assert.equal(l.ropeScaling.type, "llama3");
});

Deno.test("model config: unsupported model_type names the supported ones", () => {
  assert.throws(
    () => parseHfConfig({ ...fixture("llama"), model_type: "mistral" }, "x/config.json"),
    /x\/config.json: model_type "mistral" is not supported; supported: gpt2, qwen2, llama/,
  );
});

Deno.test("model config: rope_scaling linear/yarn recorded, unknown type rejected", () => {
  const base = fixture("llama");
  const lin = parseHfConfig({ ...base, rope_scaling: { type: "linear", factor: 4 } });
  assert.deepEqual(lin.ropeScaling, { type: "linear", factor: 4 });
  const yarn = parseHfConfig({
    ...fixture("qwen2"),
    rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 32768 },
  });
  assert.equal(yarn.ropeScaling.type, "yarn");
  if (yarn.ropeScaling.type === "yarn") {
    assert.equal(yarn.ropeScaling.factor, 4);
    assert.equal(yarn.ropeScaling.originalMaxPositions, 32768);
    assert.ok(Math.abs(yarn.ropeScaling.attentionFactor - (0.1 * Math.log(4) + 1)) < 1e-12);
  }
  assert.throws(
    () => parseHfConfig({ ...base, rope_scaling: { type: "dynamic", factor: 2 } }, "c.json"),
    /c.json: rope_scaling: type "dynamic" is not supported; supported: linear, llama3, yarn/,
  );
});

Deno.test("model config: bad fields name the field", () => {
  const base = fixture("qwen2");
  const { hidden_size: _, ...noHidden } = base;
  assert.throws(
    () => parseHfConfig(noHidden, "m/config.json"),
    /m\/config.json: field "hidden_size" is missing/,
  );
  assert.throws(
    () => parseHfConfig({ ...base, num_key_value_heads: 3 }),
    /heads 4 must be a multiple of key\/value heads 3/,
  );
  assert.throws(
    () => parseHfConfig({ ...base, hidden_act: "gelu" }),
    /hidden_act "gelu" is not supported/,
  );
  assert.throws(() => parseHfConfig({ ...base, use_sliding_window: true }), /use_sliding_window/);
  assert.throws(
    () => parseHfConfig({ ...base, eos_token_id: 64 }),
    /special token id 64 is outside/,
  );
});

Deno.test("model config: toHfConfig round-trips and parameterCount matches the layout", () => {
  for (const arch of ["gpt2", "qwen2", "llama"]) {
    const c: ModelConfig = parseHfConfig(fixture(arch));
    assert.deepEqual(parseHfConfig(JSON.parse(JSON.stringify(toHfConfig(c)))), c);
    let n = 0;
    for (const s of expectedShapes(c).values()) n += numel(s);
    assert.equal(parameterCount(c), n, arch);
  }
});
