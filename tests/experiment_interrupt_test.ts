/**
 * Interrupting a running GPU stage (what Ctrl-C does: the run's fiber is interrupted): the
 * stage's work stops at its next step — no step starts after the interrupt, and the program
 * returns only once the work has stopped —, its model is released after that (the GPU pool
 * holds what it held before), and the cache has no entry for it (finished upstream stages
 * stay cached; meta-training's checkpoint stays in its scratch folder to resume from).
 */
import assert from "node:assert/strict";
import { Cause, Effect, Exit, Option, Schema } from "effect";
import { Gpu } from "../kernels/runtime/gpu.ts";
import { DEFAULTS } from "../experiments/defaults.ts";
import { baseNode } from "../pipeline/base/base_stage.ts";
import { promptEvalStage } from "../pipeline/baselines/prompt_only/stages.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { problemsStage } from "../pipeline/experiment/data_stages.ts";
import { type Node, node, plan } from "../pipeline/experiment/graph.ts";
import type { Cell } from "../pipeline/experiment/methods.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runGraph } from "../pipeline/experiment/runner.ts";
import { deviceWork, gpuResource } from "../pipeline/experiment/gpu_work.ts";
import { metaNode, PerkMethodParams } from "../pipeline/perk/method.ts";
import { microModel } from "./session_harness.ts";
import { testRuntime } from "./testing.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fake stage: a resource held for the scope, and 100 steps of 40 ms checking the signal. */
function fakeStage(events: string[], fail = false) {
  let running = false;
  return Effect.gen(function* () {
    yield* gpuResource("fake", () => ({
      dispose: () => events.push(running ? "released while running" : "released"),
    }));
    return yield* deviceWork("fake", async (signal) => {
      running = true;
      try {
        for (let step = 1; step <= 100; step++) {
          signal.throwIfAborted();
          if (fail && step === 2) throw new Error("step 2 failed");
          events.push(`step ${step}`);
          await sleep(40);
        }
        return "done";
      } finally {
        running = false;
        events.push("stopped");
      }
    });
  }).pipe(Effect.scoped);
}

Deno.test("deviceWork: an interrupt aborts the work, waits until it stops, then releases", async () => {
  const events: string[] = [];
  const abort = new AbortController();
  setTimeout(() => {
    events.push("interrupt");
    abort.abort();
  }, 100);
  const exit = await Effect.runPromiseExit(fakeStage(events), { signal: abort.signal });
  events.push("returned");
  assert.ok(Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause), String(exit));
  // The step in flight finishes, none starts; the resource goes after the work has stopped,
  // and the program returns after that.
  const at = events.indexOf("interrupt");
  assert.deepEqual(events.slice(at), ["interrupt", "stopped", "released", "returned"]);
  assert.ok(at >= 2 && at <= 4, events.join(", "));
});

Deno.test("deviceWork: a result or a failure releases the resource; a failure names the stage", async () => {
  const failed: string[] = [];
  const exit = await Effect.runPromiseExit(fakeStage(failed, true));
  assert.ok(Exit.isFailure(exit));
  const error = Cause.findErrorOption(exit.cause);
  assert.ok(Option.isSome(error));
  assert.deepEqual([error.value._tag, error.value.stage, error.value.message], [
    "StageError",
    "fake",
    "step 2 failed",
  ]);
  assert.deepEqual(failed, ["step 1", "stopped", "released"]);
  const events: string[] = [];
  const quick = Effect.gen(function* () {
    yield* gpuResource("fake", () => ({ dispose: () => events.push("released") }));
    return yield* deviceWork("fake", () => Promise.resolve(42));
  }).pipe(Effect.scoped);
  assert.equal(await Effect.runPromise(quick), 42);
  assert.deepEqual(events, ["released"]);
});

const problems = (split: "train" | "validation" | "test", n: number) =>
  node(problemsStage, { dataset: "babilong", task: "qa1", length: "256", split, n, seed: 0 });

/**
 * Run `target`, interrupting the run half a step after `stage` reports `at` steps done (as a
 * Ctrl-C arriving while the device works). Returns what was seen and the cache.
 */
async function interruptAt(dir: string, target: Node<unknown, Gpu>, stage: string, at: number) {
  const rt = await testRuntime();
  const cache = new StageCache(`${dir}/cache`);
  const updates: { done: number; t: number }[] = [];
  const abort = new AbortController();
  let abortedAt = 0;
  const progress = {
    update: (label: string, done: number) => {
      if (label !== stage) return;
      const t = performance.now();
      updates.push({ done, t });
      if (done === at) {
        const step = t - updates[updates.length - 2].t;
        setTimeout(() => {
          abortedAt = performance.now();
          abort.abort();
        }, step / 2);
      }
    },
    line: () => {},
  };
  const heldBefore = rt.pool.inUse;
  const exit = await Effect.runPromiseExit(
    runGraph({ target }, { cache, warn: () => {} }).pipe(
      Effect.provideService(Progress, progress),
      Effect.provideService(Gpu, rt),
    ),
    { signal: abort.signal },
  );
  const returned = performance.now();
  const seenAtReturn = updates.length;
  // Had the work gone on in the background, it would report its next step within this time.
  const step = updates[1].t - updates[0].t;
  await new Promise((r) => setTimeout(r, 2 * step));
  return {
    exit,
    updates,
    step,
    abortedAt,
    returned,
    seenAtReturn,
    heldBefore,
    heldAfter: rt.pool.inUse,
    cache,
    key: (await Effect.runPromise(plan({ target }))).targetKeys.target,
  };
}

Deno.test("interrupt: prompt-eval stops at the next test problem, frees its model, caches nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perk-interrupt-" });
  const model = microModel(dir);
  const n = 24;
  const test = problems("test", n);
  const target = node(promptEvalStage, {
    model,
    max_new_tokens: 8,
    examples: 0,
    rope_scaling: "none",
  }, { base: baseNode(model), test });
  const r = await interruptAt(dir, target, "prompt-eval", 2);
  assert.ok(Exit.isFailure(r.exit) && Cause.hasInterruptsOnly(r.exit.cause), String(r.exit));
  const after = r.updates.filter((u) => u.t > r.abortedAt);
  // At most the problem in flight when the interrupt came finishes; none starts after it.
  assert.ok(after.length <= 1, `${after.length} problems answered after the interrupt`);
  const total = r.updates.at(-1)!.done;
  assert.ok(total <= 3 && total < n, `${total} of ${n} problems answered`);
  // Promptly: within about one problem's time, far from the time the problems left take.
  const waited = r.returned - r.abortedAt;
  assert.ok(
    waited < 3 * r.step + 500 && waited < (n - 2) * r.step / 4,
    `returned ${waited.toFixed(0)} ms after the interrupt (one problem: ${r.step.toFixed(0)} ms)`,
  );
  // The work had stopped when the program returned: nothing reported since.
  assert.equal(r.updates.length, r.seenAtReturn);
  // The model (and everything the answers held) is back in the pool.
  assert.equal(r.heldAfter, r.heldBefore);
  // No entry for the interrupted stage; the finished test problems stay cached.
  assert.equal((await r.cache.lookup(r.key)).status, "absent");
  const testKey = (await Effect.runPromise(plan({ test }))).targetKeys.test;
  assert.equal((await r.cache.lookup(testKey)).status, "hit");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("interrupt: PERK meta-training stops at the next outer step, keeps its checkpoint, caches nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perk-interrupt-" });
  const model = microModel(dir);
  const epochs = 40, nTrain = 2;
  // PERK's parameters (its config keys; extra keys are ignored) from the cpu profile.
  const params = Schema.decodeUnknownSync(PerkMethodParams)({
    ...DEFAULTS.cpu,
    model,
    rank: 2,
    steps: 2,
    truncate: 0,
    epochs,
    patience: epochs,
    max_new_tokens: 3,
  });
  const cell: Cell = {
    dataset: "babilong",
    task: "qa1",
    trainLength: "256",
    testLength: "256",
    trainPosition: "rnd",
    testPosition: "rnd",
    train: problems("train", nTrain),
    validation: problems("validation", 1),
    test: problems("test", 1),
  };
  // A finished one-epoch meta-training first: it makes the kernels' per-runtime tables
  // (kernels/optim/packed.ts), kept for the runtime's life, so the pool count below compares
  // like with like.
  const rt = await testRuntime();
  await Effect.runPromise(
    runGraph({ warm: metaNode(cell, { ...params, epochs: 1 }) }, {
      cache: new StageCache(`${dir}/warm-cache`),
    }).pipe(Effect.provideService(Progress, memoryProgress()), Effect.provideService(Gpu, rt)),
  );
  const r = await interruptAt(dir, metaNode(cell, params), "perk-meta-train", 2);
  assert.ok(Exit.isFailure(r.exit) && Cause.hasInterruptsOnly(r.exit.cause), String(r.exit));
  const after = r.updates.filter((u) => u.t > r.abortedAt);
  assert.ok(after.length <= 1, `${after.length} outer steps finished after the interrupt`);
  const steps = r.updates.at(-1)!.done;
  assert.ok(steps <= 3 && steps < epochs * nTrain, `${steps} of ${epochs * nTrain} steps ran`);
  const waited = r.returned - r.abortedAt;
  assert.ok(
    waited < 3 * r.step + 500 && waited < (epochs * nTrain - 2) * r.step / 4,
    `returned ${waited.toFixed(0)} ms after the interrupt (one step: ${r.step.toFixed(0)} ms)`,
  );
  assert.equal(r.updates.length, r.seenAtReturn);
  assert.equal(r.heldAfter, r.heldBefore);
  assert.equal((await r.cache.lookup(r.key)).status, "absent");
  // The last finished step's checkpoint stays, for the next run to resume from.
  assert.ok(Deno.statSync(`${r.cache.scratchPath(r.key)}/meta.safetensors`).isFile);
  await Deno.remove(dir, { recursive: true });
});
