/**
 * Batched greedy generation on the GPU: identical tokens with and without the KV cache and
 * identical to the float64 reference's generateGreedyBatch (prompts of different lengths,
 * stop ids, LoRA, the position limit); stories260K's golden continuation on the GPU.
 */
import assert from "node:assert/strict";
import { parseHfConfig } from "../pipeline/model/config.ts";
import { generateGreedyBatch } from "../pipeline/model/reference.ts";
import { defaultLoraConfig, initLora, toReferenceLora } from "../pipeline/model/lora.ts";
import { initRandomWeights, type Model } from "../pipeline/model/weights.ts";
import { readLlama2c } from "../pipeline/model/llama2c.ts";
import { readLlama2cTokenizer } from "../pipeline/model/llama2c_tokenizer.ts";
import { gpuLora, GpuModel, uploadLora } from "../pipeline/model/gpu_model.ts";
import { generateGreedyGpu } from "../pipeline/model/gpu_generate.ts";
import {
  generateText,
  generateTextGpu,
  parseGenerateArgs,
} from "../pipeline/model/generate_cli.ts";
import { exportPeft } from "../pipeline/model/peft.ts";
import { randn, sharedTest, STORIES_GOLDEN as GOLDEN, testRuntime } from "./testing.ts";

const rt = await testRuntime();

/** Random weights large enough (std 0.3) that greedy paths are not flat. */
function tinyModel(arch: string, seed = 2): Model {
  const url = new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url);
  const config = parseHfConfig(JSON.parse(Deno.readTextFileSync(url)));
  return { config, weights: initRandomWeights(config, seed, { std: 0.3, perturbAll: true }) };
}

const prompts = [[7], [1, 2, 3, 4], [5, 17, 42, 3, 3, 60, 11, 29, 8]];

for (const arch of ["gpt2", "qwen2", "llama"] as const) {
  Deno.test(`gpu generate ${arch}: cache = no cache = float64 reference (batched, stops, LoRA)`, async () => {
    const m = tinyModel(arch);
    const g = GpuModel.upload(rt, m);
    try {
      const opts = { maxNewTokens: 10, stopIds: [] as number[] };
      const want = generateGreedyBatch(m, prompts, opts);
      const cached = await generateGreedyGpu(g, prompts, opts);
      const plain = await generateGreedyGpu(g, prompts, { ...opts, useCache: false });
      assert.deepEqual(cached, want);
      assert.deepEqual(plain, want);
      assert.ok(new Set(want.map((x) => x.tokens.join())).size > 1, "rows differ");
      // A stop id ends one row early; the others run on.
      const stopAt = want[1].tokens[3];
      const sOpts = { maxNewTokens: 10, stopIds: [stopAt] };
      const sWant = generateGreedyBatch(m, prompts, sOpts);
      assert.equal(sWant[1].stop, "eos");
      assert.deepEqual(await generateGreedyGpu(g, prompts, sOpts), sWant);
      // With a LoRA adapter (non-zero B).
      const p = initLora(m.config, defaultLoraConfig(m.config, { rank: 2, seed: 5 }));
      for (const s of p.specs) {
        if (s.kind === "B") p.data.set(randn(s.size, s.offset, -0.5, 0.5), s.offset);
      }
      const loraT = uploadLora(rt, p);
      const lOpts = { maxNewTokens: 6, stopIds: [] as number[] };
      const lWant = generateGreedyBatch(m, prompts, { ...lOpts, lora: toReferenceLora(p) });
      assert.notDeepEqual(lWant, generateGreedyBatch(m, prompts, lOpts), "LoRA matters");
      const streamed: [number, number][] = [];
      const lGot = await generateGreedyGpu(g, prompts, {
        ...lOpts,
        lora: gpuLora(p.specs, loraT, p.scale),
        onToken: (r, t) => streamed.push([r, t]),
      });
      assert.deepEqual(lGot, lWant);
      prompts.forEach((_, r) =>
        assert.deepEqual(streamed.filter(([x]) => x === r).map(([, t]) => t), lWant[r].tokens)
      );
      loraT.forEach((t) => t.dispose());
    } finally {
      g.dispose();
    }
  });
}

Deno.test("gpu generate: the position limit stops a row as the reference does", async () => {
  const m = tinyModel("gpt2"); // 48 learned positions
  const g = GpuModel.upload(rt, m);
  const long = Array.from({ length: 44 }, (_, i) => (i * 7) % 60);
  const ps = [long, [3, 4]];
  const opts = { maxNewTokens: 8, stopIds: [] as number[] };
  const want = generateGreedyBatch(m, ps, opts);
  assert.equal(want[0].stop, "max_positions");
  assert.deepEqual(await generateGreedyGpu(g, ps, opts), want);
  assert.deepEqual(await generateGreedyGpu(g, ps, { ...opts, useCache: false }), want);
  g.dispose();
});

sharedTest(
  "models/stories260K",
  "gpu generate: stories260K greedy golden continuation",
  async (dir) => {
    const model = readLlama2c(`${dir}/stories260K.bin`);
    const tok = readLlama2cTokenizer(`${dir}/tok512.bin`, model.config.vocab);
    const g = GpuModel.upload(rt, model);
    const prompt = tok.encode("Once upon a time", { bos: true });
    const [gen] = await generateGreedyGpu(g, [prompt], { maxNewTokens: 64 });
    const text = tok.decode([...prompt, ...gen.tokens]);
    assert.equal(text.slice(0, GOLDEN.length), GOLDEN);
    assert.equal(text[GOLDEN.length], "\n");
    g.dispose();
  },
);

sharedTest(
  "models/stories260K",
  "gpu generate: the CLI's GPU path prints what --reference prints (with a PEFT adapter)",
  async (dir) => {
    const bin = `${dir}/stories260K.bin`;
    const model = readLlama2c(bin);
    const adapter = Deno.makeTempDirSync();
    const p = initLora(model.config, defaultLoraConfig(model.config, { rank: 4, seed: 1 }));
    p.data.set(randn(p.data.length, 5, -0.4, 0.4));
    exportPeft(adapter, model.config, p);
    const args = parseGenerateArgs([
      "--model",
      bin,
      "--prompt",
      "Once upon a time",
      "--max-tokens",
      "24",
      "--adapter",
      adapter,
    ]);
    if (args === "help") throw new Error("unexpected --help");
    assert.equal(args.reference, undefined);
    const chunks: string[] = [];
    const gpu = await generateTextGpu(args, (s) => chunks.push(s), rt);
    assert.equal(gpu, generateText(args));
    assert.equal(chunks.join(""), gpu);
    const ref = parseGenerateArgs(["--model", bin, "--prompt", "x", "--reference"]);
    assert.equal(ref !== "help" && ref.reference, true);
    Deno.removeSync(adapter, { recursive: true });
  },
);
