/**
 * Chunked prefill: a long prompt is fed to the KV cache in column chunks; the generated
 * tokens equal the float64 reference's, for every architecture, on each attention path of
 * GpuModel.forward: the fused first chunk (left padding as segment 0), fused later chunks
 * of unpadded rows (keys copied from the cache's filled prefix), and masked later chunks of
 * padded rows (composed attention, bounded scores).
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
      // Padded rows: a fused first chunk of 5 columns (4 pads + 1 token), then masked chunks
      // of 3 (capacity = 64 slots: 3 columns of scores for 2 rows × H heads).
      const budget = 4 * prompts.length * m.config.heads * 64 * 3;
      assert.deepEqual(
        await generateGreedyGpu(g, prompts, {
          ...opts,
          prefillTokens: 3,
          prefillScoreBytes: budget,
        }),
        generateGreedyBatch(m, prompts, opts),
      );
      // One unpadded prompt: fused chunks of 3, each reading the cache's filled prefix.
      assert.deepEqual(
        await generateGreedyGpu(g, [prompts[0]], { ...opts, prefillTokens: 3 }),
        generateGreedyBatch(m, [prompts[0]], opts),
      );
    } finally {
      g.dispose();
    }
  });
}
