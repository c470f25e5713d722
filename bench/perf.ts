/**
 * `deno task perf [filter…]`: runs every benchmark case (or those whose name contains a
 * filter) and prints one `PERF <case> <value> <unit>` line per case.
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import type { PerfCase } from "./perf_case.ts";

// Each module exports `cases: PerfCase[]`; add new families here.
const modules = [
  "./matmul_perf.ts",
  "./host_perf.ts",
  "./ops_perf.ts",
  "./block_perf.ts",
  "./data_perf.ts",
  "./model_perf.ts",
  "./perk_perf.ts",
];

const filters = Deno.args;
const rt = await createRuntime();
console.error(`# adapter: ${rt.adapter.description} (fallback: ${rt.adapter.isFallbackAdapter})`);
for (const m of modules) {
  let cases: PerfCase[];
  try {
    cases = (await import(m)).cases;
  } catch (e) {
    if (e instanceof Error && /Module not found/.test(e.message)) continue; // not built yet
    throw e;
  }
  for (const c of cases) {
    if (filters.length && !filters.some((f) => c.name.includes(f))) continue;
    const v = await c.run(rt);
    const digits = Math.abs(v) >= 100 ? 1 : 3;
    console.log(`PERF ${c.name} ${Number.isInteger(v) ? v : v.toFixed(digits)} ${c.unit}`);
  }
}
rt.destroy();
