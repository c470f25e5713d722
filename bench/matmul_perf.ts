/**
 * Matmul throughput (GFLOP/s = 2·M·N·K / time). Case names: matmul_f32[_nt|_tn]_<M>x<K>x<N>
 * for A (M×K) · B (K×N). Each timing records `reps` dispatches in one submission and waits
 * once, so readback latency (≥ 10 ms on lavapipe) is not counted per matmul.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { matmul, type MatmulOptions } from "../kernels/matmul/matmul.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

export function matmulGflops(
  rt: Runtime,
  m: number,
  k: number,
  n: number,
  o: MatmulOptions = {},
  reps = 4,
): Promise<number> {
  return rt.scopeAsync(async () => {
    const a = rt.tensor(
      new Float32Array(m * k).map((_, i) => (i % 7) * 0.1),
      o.transA ? [k, m] : [m, k],
    );
    const b = rt.tensor(
      new Float32Array(k * n).map((_, i) => (i % 5) * 0.1),
      o.transB ? [n, k] : [k, n],
    );
    const c = rt.empty([m, n]);
    const ms = await medianMs(async () => {
      for (let i = 0; i < reps; i++) matmul(a, b, { ...o, out: c });
      await rt.sync();
    }, { runs: 5, warmup: 1 });
    return (2 * m * n * k * reps) / (ms * 1e6);
  });
}

const mm = (name: string, m: number, k: number, n: number, o: MatmulOptions = {}): PerfCase => ({
  name,
  unit: "GFLOP/s",
  run: (rt) => matmulGflops(rt, m, k, n, o),
});

export const cases: PerfCase[] = [
  mm("matmul_f32_4096x512x512", 4096, 512, 512),
  mm("matmul_f32_4096x1024x1024", 4096, 1024, 1024),
  mm("matmul_f32_512x512x512", 512, 512, 512),
  mm("matmul_f32_4096x512x16", 4096, 512, 16),
  mm("matmul_f32_4096x16x512", 4096, 16, 512),
  mm("matmul_f32_nt_4096x512x512", 4096, 512, 512, { transB: true }),
  mm("matmul_f32_tn_4096x512x512", 4096, 512, 512, { transA: true }),
  // The cpu-profile model's shapes (1024 tokens, dim 128, SwiGLU 352, 6144-id head).
  mm("matmul_f32_1024x128x352", 1024, 128, 352),
  mm("matmul_f32_1024x128x6144", 1024, 128, 6144),
  // …and the 256-token cpu meta-step's (a segment and its prompt: 288 rows): the MLP and the
  // output head (logits as A·Eᵀ).
  mm("matmul_f32_288x128x352", 288, 128, 352),
  mm("matmul_f32_nt_288x128x6144", 288, 128, 6144, { transB: true }),
  // The same kernels reading storage buffers instead of staged texels (the default on
  // lavapipe): the ratio is what texel staging buys on this adapter.
  mm("matmul_storage_f32_4096x512x512", 4096, 512, 512, { family: "subgroup" }),
  mm("matmul_storage_f32_1024x128x352", 1024, 128, 352, { family: "subgroup" }),
  // The LoRA weight gradient xᵀ·g (K = tokens, N = rank): thin output, long K.
  mm("matmul_f32_tn_128x4096x16", 128, 4096, 16, { transA: true }),
  // The discrete-GPU family (register-blocked tiles; split-K for the LoRA gradient) forced
  // on whatever adapter runs: on lavapipe it is several times slower than the default
  // family (workgroup memory and barriers are slow there); the figures matter on GPUs.
  mm("matmul_tiled_f32_512x512x512", 512, 512, 512, { family: "tiled" }),
  mm("matmul_tiled_f32_tn_128x4096x16", 128, 4096, 16, { transA: true, family: "tiled" }),
  // GPU-sized products (minutes on a CPU adapter): only with PERK_PERF_GPU=1.
  ...(Deno.env.get("PERK_PERF_GPU") === "1"
    ? [
      mm("matmul_f32_4096x4096x4096", 4096, 4096, 4096),
      mm("matmul_f32_tn_768x8192x16", 768, 8192, 16, { transA: true }),
    ]
    : []),
];
