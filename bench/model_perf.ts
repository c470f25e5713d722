/**
 * Model benchmarks: loading stories260K (llama2.c checkpoint read, q/k permutation to the
 * canonical layout, tokenizer parse; skipped with a message when ../shared is absent), and
 * forward+backward of the tiny default model on the GPU: the loss of 4 (1K tokens) or 32
 * (8K tokens) 256-token segments in one batch and its gradient w.r.t. a rank-16 LoRA on
 * every linear with dropout 0.1 — PERK's inner-loop workload (base weights frozen).
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { grad } from "../kernels/autodiff/transforms.ts";
import { readLlama2c } from "../pipeline/model/llama2c.ts";
import { readLlama2cTokenizer } from "../pipeline/model/llama2c_tokenizer.ts";
import { defaultLoraConfig, initLora } from "../pipeline/model/lora.ts";
import { tinyConfig } from "../pipeline/base/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { gpuLora, GpuModel, uploadLora } from "../pipeline/model/gpu_model.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

const dir = new URL("../../shared/models/stories260K/", import.meta.url).pathname;
const present = (() => {
  try {
    Deno.statSync(`${dir}stories260K.bin`);
    return true;
  } catch {
    return false;
  }
})();

if (!present) console.error(`# skip load_stories260k: ${dir}stories260K.bin is absent`);

const SEG = 256;
let tiny: { model: GpuModel; lora: Tensor[]; f: (segs: number) => (...th: Tensor[]) => Tensor };
function tinySetup(rt: Runtime) {
  if (tiny) return tiny;
  const config = tinyConfig();
  const model = GpuModel.upload(rt, { config, weights: initRandomWeights(config, 1) });
  const p = initLora(config, defaultLoraConfig(config, { seed: 1 }));
  p.data.forEach((_, i) => (p.data[i] += 1e-3 * Math.sin(i))); // B ≠ 0 (cost is the same)
  const lora = uploadLora(rt, p);
  const f = (segs: number) => {
    const ids = Int32Array.from({ length: segs * SEG }, (_, i) => (i * 7919 + 13) % config.vocab);
    return (...th: Tensor[]) =>
      model.loss(ids, {
        batch: segs,
        lora: gpuLora(p.specs, th, p.scale, 0.1),
        dropoutSeed: 1,
      });
  };
  return tiny = { model, lora, f };
}

/** tok/s of loss + ∇LoRA over `segs` segments (median; the first run compiles, untimed). */
async function fwdbwd(rt: Runtime, segs: number, runs: number): Promise<number> {
  const { lora, f } = tinySetup(rt);
  const loss = f(segs);
  const ms = await medianMs(() =>
    rt.scopeAsync(async () => {
      grad(loss, lora);
      await rt.sync();
    }), { runs, warmup: 1 });
  return (segs * SEG) / (ms / 1000);
}

const tinyCases: PerfCase[] = [
  { name: "tiny_fwdbwd_1k", unit: "tok/s", run: (rt) => fwdbwd(rt, 4, 3) },
  { name: "tiny_fwdbwd_8k", unit: "tok/s", run: (rt) => fwdbwd(rt, 32, 1) },
];

export const cases: PerfCase[] = [...loadCases(), ...tinyCases];

function loadCases(): PerfCase[] {
  return present
    ? [{
      name: "load_stories260k",
      unit: "ms",
      run: () =>
        medianMs(() => {
          const m = readLlama2c(`${dir}stories260K.bin`);
          readLlama2cTokenizer(`${dir}tok512.bin`, m.config.vocab);
          return Promise.resolve();
        }, { runs: 7, warmup: 2 }),
    }]
    : [];
}
