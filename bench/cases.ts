/** The benchmark families `deno task perf` and `deno task profile` choose cases from. */
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

/** Every case whose name contains one of `filters` (all cases when there are none). */
export async function loadCases(filters: readonly string[]): Promise<PerfCase[]> {
  const out: PerfCase[] = [];
  for (const m of modules) {
    let cases: PerfCase[];
    try {
      cases = (await import(m)).cases;
    } catch (e) {
      if (e instanceof Error && /Module not found/.test(e.message)) continue; // not built yet
      throw e;
    }
    out.push(...cases.filter((c) => !filters.length || filters.some((f) => c.name.includes(f))));
  }
  return out;
}
