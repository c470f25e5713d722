/**
 * A benchmark case: `deno task perf` prints `PERF <name> <value> <unit>` for each.
 * Case names and units are contracts that checks read: keep them exact and stable.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";

export interface PerfCase {
  readonly name: string;
  readonly unit: string;
  /** Returns the figure (median of several runs where it is a timing). */
  run(rt: Runtime): Promise<number>;
}

/** Median of `runs` timings of `fn` (ms), after `warmup` untimed runs. */
export async function medianMs(
  fn: () => Promise<void>,
  { runs = 5, warmup = 1 } = {},
): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const s = performance.now();
    await fn();
    t.push(performance.now() - s);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}
