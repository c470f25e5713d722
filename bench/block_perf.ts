/**
 * Differentiable-core benchmarks on one decoder block with LoRA (d = 256, 4 heads, T = 256,
 * batch 16; SwiGLU hidden 688, LoRA rank 16 on every linear, LM head over 256 ids):
 * attention forward, gradient and HVP w.r.t. the LoRA parameters (ms, median of 3) and the
 * pool's peak bytes above the inputs for grad and hvp.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { type BlockConfig, blockLoss, randomBlock } from "../tests/example_block.ts";
import { attention } from "../kernels/autodiff/nn.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import { ropeTables } from "../kernels/ops/nn_kernels.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

const c: BlockConfig = {
  batch: 16,
  T: 256,
  dim: 256,
  heads: 4,
  kvHeads: 4,
  hidden: 688,
  vocab: 256,
  layers: 1,
  rank: 16,
  loraScale: 2,
};

function rand(n: number, seed: number, lo: number, hi: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * a) / 4294967296;
  }
  return out;
}

function setup(rt: Runtime) {
  const hd = c.dim / c.heads, BT = c.batch * c.T;
  const r = randomBlock(rt, c, 1, rand);
  const rope = ropeTables(c.T, hd, 10000);
  const inputs = {
    x: rt.tensor(rand(BT * c.dim, 9, -1, 1), [BT, c.dim]),
    cos: rt.tensor(rope.cos, [c.T, hd / 2]),
    sin: rt.tensor(rope.sin, [c.T, hd / 2]),
    targets: rt.tensor(Int32Array.from({ length: BT }, (_, i) => (i * 31) % c.vocab), [BT], "i32"),
    weights: rt.tensor(rand(BT, 10, 0.5, 1), [BT]),
  };
  const f = (...lo: Tensor[]) => blockLoss(c, r.base, lo, inputs);
  const vs = r.lora.map((t, i) => rt.tensor(rand(t.size, 100 + i, -1, 1), t.shape));
  return { lora: r.lora, f, vs };
}

const results = new Map<string, number>();

async function measureBlock(rt: Runtime): Promise<void> {
  if (results.size) return;
  await rt.scopeAsync(async () => {
    const { lora, f, vs } = setup(rt);
    await rt.sync();
    for (const mode of ["grad", "hvp"] as const) {
      const run = () => rt.scope(() => void (mode === "grad" ? grad(f, lora) : hvp(f, lora, vs)));
      const base = rt.pool.inUse;
      rt.pool.resetPeak();
      run();
      await rt.sync();
      results.set(`${mode}_block_peak_bytes`, rt.pool.peak - base);
      results.set(
        `${mode}_block_ms`,
        await medianMs(async () => {
          run();
          await rt.sync();
        }, { runs: 3, warmup: 0 }),
      );
    }
  });
}

async function attentionFwd(rt: Runtime): Promise<number> {
  return await rt.scopeAsync(async () => {
    const hd = c.dim / c.heads, n = c.batch * c.heads * c.T * hd;
    const sh = [c.batch, c.heads, c.T, hd];
    const q = rt.tensor(rand(n, 1, -1, 1), sh), k = rt.tensor(rand(n, 2, -1, 1), sh);
    const v = rt.tensor(rand(n, 3, -1, 1), sh);
    return await medianMs(async () => {
      rt.scope(() => void attention(q, k, v, { causal: true }));
      await rt.sync();
    }, { runs: 5, warmup: 1 });
  });
}

const fromBlock = (name: string, unit: string): PerfCase => ({
  name,
  unit,
  run: async (rt) => {
    await measureBlock(rt);
    return results.get(name)!;
  },
});

export const cases: PerfCase[] = [
  { name: "attention_fwd_ms", unit: "ms", run: attentionFwd },
  fromBlock("grad_block_ms", "ms"),
  fromBlock("hvp_block_ms", "ms"),
  fromBlock("grad_block_peak_bytes", "bytes"),
  fromBlock("hvp_block_peak_bytes", "bytes"),
];
