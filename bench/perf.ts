/**
 * `deno task perf [filter…]`: runs every benchmark case (or those whose name contains a
 * filter) and prints one `PERF <case> <value> <unit>` line per case.
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import { loadCases } from "./cases.ts";

const rt = await createRuntime();
console.error(`# adapter: ${rt.adapter.description} (fallback: ${rt.adapter.isFallbackAdapter})`);
for (const c of await loadCases(Deno.args)) {
  const v = await c.run(rt);
  const digits = Math.abs(v) >= 100 ? 1 : 3;
  console.log(`PERF ${c.name} ${Number.isInteger(v) ? v : v.toFixed(digits)} ${c.unit}`);
}
rt.destroy();
