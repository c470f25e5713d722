/**
 * `deno task profile <case-filter…>`: runs the matching `deno task perf` cases with per-kernel
 * GPU timing (timestamp queries, one compute pass per dispatch, so the run itself is slower)
 * and prints, per kernel family, calls, GPU time and its share, then host wall time and the
 * runtime's counters: dispatches, submits, waits (host blocked on the device) and readbacks.
 * Covers every run a case makes (warm-up included); PERK_PERF_RUNS=1 keeps it to two.
 * `--shapes`: kernels whose pipelines are specialised per shape (the CPU adapters' subgroup and
 * texel matmuls) are timed per shape ("matmul_tex_nt 288x6144x128": M×N×K), to find the hot ones.
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import { loadCases } from "./cases.ts";

const shapes = Deno.args.includes("--shapes");
const filters = Deno.args.filter((a) => a !== "--shapes");
if (!filters.length) {
  console.error(
    "usage: deno task profile [--shapes] <case-filter…>   e.g. deno task profile metatrain_1k_T2_ms",
  );
  Deno.exit(2);
}
const rt = await createRuntime();
console.log(`# adapter: ${rt.adapter.description}`);
if (!rt.hasTimestamps) {
  console.error("profile: this adapter has no 'timestamp-query' feature; only counters are shown");
}
const cases = await loadCases(filters);
if (!cases.length) {
  console.error(`profile: no case matches ${filters.join(", ")}; see bench/*_perf.ts`);
  Deno.exit(2);
}
for (const c of cases) {
  rt.enableProfiling({ detail: shapes });
  const before = { ...rt.stats };
  const t0 = performance.now();
  const value = await c.run(rt);
  const wall = performance.now() - t0;
  const profile = await rt.collectProfile();
  const rows = [...profile.entries()].sort((a, b) => b[1].ns - a[1].ns);
  const gpuNs = rows.reduce((s, [, e]) => s + e.ns, 0);
  const d = (k: keyof typeof before) => rt.stats[k] - before[k];
  console.log(`\n## ${c.name} = ${value} ${c.unit}`);
  console.log(
    `host wall ${wall.toFixed(0)} ms · GPU ${(gpuNs / 1e6).toFixed(0)} ms · ` +
      `${d("dispatches")} dispatches · ${d("submits")} submits · ${d("waits")} waits · ` +
      `${d("reads")} readbacks · ${d("compiles")} compiles · ${
        d("bindGroupHits")
      } bind groups reused`,
  );
  console.log("| kernel | calls | GPU ms | share | µs/call |\n|---|---:|---:|---:|---:|");
  for (const [name, e] of rows.slice(0, 40)) {
    console.log(
      `| ${name.replaceAll("|", "\\|")} | ${e.calls} | ${(e.ns / 1e6).toFixed(1)} | ` +
        `${(100 * e.ns / Math.max(1, gpuNs)).toFixed(1)}% | ${(e.ns / e.calls / 1e3).toFixed(1)} |`,
    );
  }
  if (rows.length > 40) console.log(`| … ${rows.length - 40} more kernels | | | | |`);
  rt.disableProfiling();
}
rt.destroy();
