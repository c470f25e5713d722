/**
 * Host anchors for the matmul figures: the same 4096×512×512 fp32 product measured by
 *  - `torch_matmul_f32_4096x512x512`: Debian's PyTorch (`/usr/bin/python3`, all cores), the CPU
 *    anchor the targets are quoted against;
 *  - `ref_sgT_matmul_f32_4096x512x512`: the generated lavapipe example kernel in
 *    `../shared/reference/lavapipe-matmul-sgT-example.wgsl` (the figure the target came
 *    from), run as is on this adapter;
 *  - `ratio_matmul_f32_4096x512x512_vs_torch` / `_vs_ref_sgT`: ours ÷ anchor, measured in one run.
 * A host much slower than the one the targets were set on shows up here as low anchors, not as a
 * low ratio. Cases whose anchor is missing (no torch, no ../shared) print NaN and say why.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { matmulGflops } from "./matmul_perf.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

const M = 4096, K = 512, N = 512;
const FLOP = 2 * M * N * K;
const results = new Map<string, number>();

const TORCH_SCRIPT = `
import time, torch
a = torch.rand(${M}, ${K}); b = torch.rand(${K}, ${N}); a @ b
ts = []
for _ in range(5):
    t = time.perf_counter()
    for _ in range(4): a @ b
    ts.append((time.perf_counter() - t) / 4)
ts.sort(); print(${FLOP} / ts[2] / 1e9)
`;

async function torchGflops(): Promise<number> {
  try {
    const out = await new Deno.Command("/usr/bin/python3", { args: ["-c", TORCH_SCRIPT] }).output();
    if (out.success) return Number(new TextDecoder().decode(out.stdout).trim());
    console.error(`# torch anchor skipped: ${new TextDecoder().decode(out.stderr).slice(-200)}`);
  } catch {
    console.error("# torch anchor skipped: no /usr/bin/python3 (apt-get install python3-torch)");
  }
  return NaN;
}

const REF_WGSL = new URL(
  "../../shared/reference/lavapipe-matmul-sgT-example.wgsl",
  import.meta.url,
);

/** The reference example: 32-lane workgroups, 16 columns × 128 rows each, sizes baked in. */
async function refGflops(rt: Runtime): Promise<number> {
  let code: string;
  try {
    code = await Deno.readTextFile(REF_WGSL);
  } catch {
    console.error(`# ref_sgT anchor skipped: ${REF_WGSL.pathname} is absent`);
    return NaN;
  }
  if (!rt.hasSubgroups) return NaN;
  return await rt.scopeAsync(async () => {
    const a = rt.tensor(new Float32Array(M * K).map((_, i) => (i % 7) * 0.1), [M, K]);
    const b = rt.tensor(new Float32Array(K * N).map((_, i) => (i % 5) * 0.1), [K, N]);
    const c = rt.empty([M, N]);
    const device = rt.device;
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [a, b, c].map((t, i) => ({ binding: i, resource: { buffer: t.buf } })),
    });
    const reps = 4;
    const ms = await medianMs(async () => {
      const enc = device.createCommandEncoder();
      for (let i = 0; i < reps; i++) {
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(N / 16, M / 128);
        pass.end();
      }
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    }, { runs: 5, warmup: 1 });
    return (FLOP * reps) / (ms * 1e6);
  });
}

async function measure(rt: Runtime): Promise<void> {
  if (results.size) return;
  results.set("ours", await matmulGflops(rt, M, K, N));
  results.set("torch", await torchGflops());
  results.set("ref", await refGflops(rt));
}

const anchor = (name: string, key: string, unit: string, ratio = false): PerfCase => ({
  name,
  unit,
  run: async (rt) => {
    await measure(rt);
    return ratio ? results.get("ours")! / results.get(key)! : results.get(key)!;
  },
});

export const cases: PerfCase[] = [
  anchor("torch_matmul_f32_4096x512x512", "torch", "GFLOP/s"),
  anchor("ref_sgT_matmul_f32_4096x512x512", "ref", "GFLOP/s"),
  anchor("ratio_matmul_f32_4096x512x512_vs_torch", "torch", "x", true),
  anchor("ratio_matmul_f32_4096x512x512_vs_ref_sgT", "ref", "x", true),
];
