/**
 * Subprocess for tests/experiment_cache_test.ts: runs a two-stage toy graph on a cache
 * folder, appending "<stage> <pid>" to a counter file each time a stage really executes.
 * A stage sleeps while `<dir>/block` exists (so a test can kill the process mid-stage).
 *
 *   deno run -A tests/experiment_toy_child.ts CACHE_DIR WORK_DIR
 */
import { Effect, Schema } from "effect";
import type { Problem } from "../pipeline/data/problems.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import type { Method, Prediction } from "../pipeline/experiment/methods.ts";
import { node } from "../pipeline/experiment/graph.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runGraph } from "../pipeline/experiment/runner.ts";
import { defineStage } from "../pipeline/experiment/stage.ts";
import { StageError } from "../pipeline/experiment/errors.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A toy source stage: `counted()`, `ms` of work, then `n` numbers `f(i)`. */
export function slowSource(
  name: string,
  ms: number,
  counted: () => unknown,
  f = (i: number) => i,
) {
  return defineStage({
    name,
    version: 1,
    params: Schema.Struct({ n: Schema.Int }),
    run: (p) =>
      Effect.promise(async () => {
        await counted();
        await sleep(ms);
        return Array.from({ length: p.n }, (_, i) => f(i));
      }),
  });
}

export function toyGraph(work: string) {
  const count = (stage: string) =>
    Deno.writeTextFile(`${work}/counts.txt`, `${stage} ${Deno.pid}\n`, { append: true });
  const first = slowSource("child-first", 300, () => count("child-first"), (i) => i * i);
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

/** Toy stage counts for the session tests (per process). */
export const toyCounts = { fit: 0, answer: 0 };

const toyFit = defineStage({
  name: "toy-fit",
  version: 1,
  params: Schema.Struct({ rank: Schema.Int }),
  // Rank 99 fails (a stage error), for the FAILED run-folder test.
  run: (p, inputs: { train: Problem[] }, ctx) =>
    p.rank === 99
      ? Effect.fail(new StageError({ stage: "toy-fit", message: "rank 99 is refused by the toy" }))
      : Effect.sync(() => {
        toyCounts.fit++;
        for (let step = 1; step <= 3; step++) ctx.metric({ step, loss: 1 / (step * p.rank) });
        return { rank: p.rank, seen: inputs.train.length };
      }),
});

const toyAnswer = defineStage({
  name: "toy-answer",
  version: 1,
  params: Schema.Struct({}),
  run: (_p, inputs: { fit: { rank: number }; test: Problem[] }) =>
    Effect.sync((): Prediction[] => {
      toyCounts.answer++;
      // Right on three problems of four (a known accuracy of 0.75); the fourth answer is
      // blank, a known share of empty predictions.
      return inputs.test.map((p, i) => ({
        id: p.id,
        prediction: i % 4 === 3 ? " \n " : p.target,
        ms: 10 * inputs.fit.rank,
        peakBytes: 1000 * inputs.fit.rank,
      }));
    }),
});

/** A toy method ("oracle" on 3 of 4 problems) for the experiment-system tests. */
export const method: Method<{ rank: number }> = {
  name: "toy",
  description: "answers 3 of 4 problems right (tests only)",
  params: Schema.Struct({ rank: Schema.Int }),
  predictions: (cell, params) =>
    node(toyAnswer, {}, { fit: node(toyFit, params, { train: cell.train }), test: cell.test }),
};

if (import.meta.main) {
  const [cacheDir, work] = Deno.args;
  const out = await Effect.runPromise(
    runGraph(toyGraph(work), { cache: new StageCache(cacheDir), lock: { pollMs: 50 } }).pipe(
      Effect.provideService(Progress, memoryProgress()),
    ),
  );
  console.log(JSON.stringify({ sum: out.results.sum, statuses: out.reports.map((r) => r.status) }));
}
