/**
 * Prompt prefill and greedy decoding cost: the `cpu` profile config with random weights, B
 * prompts of about L tokens (row b is 7·b shorter: left padding), NEW new tokens, RUNS runs.
 * `deno run -A bench/prefill.ts [L=2048] [B=1] [NEW=8] [RUNS=2]`; prints wall ms and the pool peak.
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import { profileConfig } from "../pipeline/base/pretrain.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { generateGreedyGpu } from "../pipeline/model/gpu_generate.ts";
const [L, B, NEW, RUNS] = [2048, 1, 8, 2].map((d, i) => Number(Deno.args[i] ?? d));
const rt = await createRuntime();
const config = { ...profileConfig("cpu", 6144), maxPositions: 16384 };
const model = GpuModel.upload(rt, { config, weights: initRandomWeights(config, 1) });
const prompts = Array.from(
  { length: B },
  (_, b) => Array.from({ length: L - 7 * b }, (_, i) => (i * 7919 + 13 + b) % config.vocab),
);
for (let r = 0; r < RUNS; r++) {
  await rt.sync();
  rt.pool.resetPeak();
  const before = rt.pool.inUse;
  const t0 = performance.now();
  const g = await generateGreedyGpu(model, prompts, { maxNewTokens: NEW, stopIds: [] });
  const ms = performance.now() - t0, mib = (rt.pool.peak - before) / 2 ** 20;
  const tokens = g.map((x) => x.tokens.join(",")).join(" | ");
  console.log(`L ${L} B ${B} run ${r}: ${ms.toFixed(0)} ms, peak ${mib.toFixed(1)} MiB, ${tokens}`);
}
