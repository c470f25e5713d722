/**
 * Chunked prefill: a long prompt is fed to the KV cache in column chunks (bounded attention
 * scores); the generated tokens equal the float64 reference's, for every architecture.
 */
import assert from "node:assert/strict";
import { parseHfConfig } from "../pipeline/model/config.ts";
import { generateGreedyBatch } from "../pipeline/model/reference.ts";
import { initRandomWeights, type Model } from "../pipeline/model/weights.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { generateGreedyGpu } from "../pipeline/model/gpu_generate.ts";
import { testRuntime } from "./testing.ts";

const rt = await testRuntime();

function tinyModel(arch: string): Model {
  const url = new URL(`../fixtures/models/tiny-${arch}/config.json`, import.meta.url);
  const config = parseHfConfig(JSON.parse(Deno.readTextFileSync(url)));
  return { config, weights: initRandomWeights(config, 3, { std: 0.3, perturbAll: true }) };
}

const prompts = [[7, 3, 9, 1, 4, 4, 12, 5, 6, 2, 8], [1, 2, 3, 4, 5, 6, 7]];

for (const arch of ["gpt2", "qwen2", "llama"] as const) {
  Deno.test(`gpu generate ${arch}: prefill in chunks of 3 columns = reference`, async () => {
    const m = tinyModel(arch);
    const g = GpuModel.upload(rt, m);
    try {
      const opts = { maxNewTokens: 5, stopIds: [] as number[] };
      const want = generateGreedyBatch(m, prompts, opts);
      // capacity = 64 slots here: 3 columns of scores for 2 rows × H heads.
      const budget = 4 * prompts.length * m.config.heads * 64 * 3;
      const got = await generateGreedyGpu(g, prompts, { ...opts, prefillScoreBytes: budget });
      assert.deepEqual(got, want);
    } finally {
      g.dispose();
    }
  });
}
