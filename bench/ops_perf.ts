/**
 * Elementwise bandwidth: `add_f32_4M` = bytes moved (read a, read b, write c: 3 × 4 × 4M)
 * per second, in GB/s. Several adds go in one submission and we wait once.
 */
import { add } from "../kernels/ops/elementwise.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

export const cases: PerfCase[] = [{
  name: "add_f32_4M",
  unit: "GB/s",
  run: (rt) =>
    rt.scopeAsync(async () => {
      const n = 4 * 1024 * 1024, reps = 8;
      const a = rt.tensor(new Float32Array(n).fill(1));
      const b = rt.tensor(new Float32Array(n).fill(2));
      const c = rt.empty([n]);
      const ms = await medianMs(async () => {
        for (let i = 0; i < reps; i++) add(a, b, { out: c });
        await rt.sync();
      }, { runs: 5, warmup: 1 });
      return (3 * 4 * n * reps) / (ms * 1e6);
    }),
}];
