/**
 * Subprocess for tests/experiment_cache_test.ts: runs a two-stage toy graph on a cache
 * folder, appending "<stage> <pid>" to a counter file each time a stage really executes.
 * A stage sleeps while `<dir>/block` exists (so a test can kill the process mid-stage).
 *
 *   deno run -A tests/experiment_toy_child.ts CACHE_DIR WORK_DIR
 */
import { Effect, Schema } from "effect";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { node } from "../pipeline/experiment/graph.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runGraph } from "../pipeline/experiment/runner.ts";
import { defineStage } from "../pipeline/experiment/stage.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function toyGraph(work: string) {
  const count = (stage: string) =>
    Deno.writeTextFile(`${work}/counts.txt`, `${stage} ${Deno.pid}\n`, { append: true });
  const first = defineStage({
    name: "child-first",
    version: 1,
    params: Schema.Struct({ n: Schema.Int }),
    run: (p) =>
      Effect.promise(async () => {
        await count("child-first");
        await sleep(300);
        return Array.from({ length: p.n }, (_, i) => i * i);
      }),
  });
  const second = defineStage({
    name: "child-second",
    version: 1,
    params: Schema.Struct({}),
    run: (_p, inputs: { xs: number[] }) =>
      Effect.promise(async () => {
        await count("child-second");
        await Deno.writeTextFile(`${work}/second-started`, String(Deno.pid));
        while (await Deno.stat(`${work}/block`).then(() => true, () => false)) await sleep(50);
        await sleep(300);
        return inputs.xs.reduce((a, b) => a + b, 0);
      }),
  });
  return { sum: node(second, {}, { xs: node(first, { n: 10 }) }) };
}

if (import.meta.main) {
  const [cacheDir, work] = Deno.args;
  const out = await Effect.runPromise(
    runGraph(toyGraph(work), { cache: new StageCache(cacheDir), lock: { pollMs: 50 } }).pipe(
      Effect.provideService(Progress, memoryProgress()),
    ),
  );
  console.log(JSON.stringify({ sum: out.results.sum, statuses: out.reports.map((r) => r.status) }));
}
