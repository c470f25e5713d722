/**
 * PERK and its controls as experiment methods, end to end through the runner on a micro
 * model: perk and perk-no-encode share one meta-training (the same cache key), perk-ttt
 * trains nothing, every method answers every test problem, and the run folder has the
 * predictions of all three.
 */
import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { Gpu } from "../kernels/runtime/gpu.ts";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import { METHOD_SOURCES } from "../experiments/methods.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { MethodRegistry } from "../pipeline/experiment/methods.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runSession } from "../pipeline/experiment/session.ts";
import { saveHfModel } from "../pipeline/model/hf_loader.ts";
import { tinyConfig } from "../pipeline/model/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { testRuntime } from "./testing.ts";

Deno.test("perk, perk-no-encode and perk-ttt run as methods; the first two share one meta-training", async () => {
  const dir = await Deno.makeTempDir();
  const config = {
    ...tinyConfig(),
    dim: 16,
    layers: 1,
    heads: 1,
    kvHeads: 1,
    headDim: 16,
    hidden: 32,
  };
  saveHfModel(`${dir}/model`, { config, weights: initRandomWeights(config, 3) });
  Deno.copyFileSync(
    new URL("../fixtures/models/tiny/compact_vocab.json", import.meta.url),
    `${dir}/model/compact_vocab.json`,
  );
  const base = {
    ...DEFAULTS.cpu,
    model: `${dir}/model`,
    methods: ["perk", "perk-no-encode", "perk-ttt"],
    train_lengths: ["256"],
    test_lengths: ["256"],
    n_train: 2,
    n_validation: 1,
    n_test: 2,
    epochs: 1,
    steps: 2,
    rank: 2,
    max_new_tokens: 3,
  };
  const lines: string[] = [];
  const rt = await testRuntime();
  const exit = await Effect.runPromiseExit(
    runSession({
      experiment: defineExperiment({ name: "perk-methods-test", title: "t", description: "t" }),
      fields: FIELDS,
      defaults: { cpu: base, paper: base },
      registry: new MethodRegistry(METHOD_SOURCES),
      request: { profile: "cpu" },
      cache: new StageCache(`${dir}/cache`),
      runsRoot: `${dir}/runs`,
      adapter: { line: "adapter: test", record: null, isCpu: true },
      out: (l) => lines.push(l),
      warn: () => {},
    }).pipe(Effect.provideService(Progress, memoryProgress()), Effect.provideService(Gpu, rt)),
  );
  assert.ok(Exit.isSuccess(exit), `${exit}\n${lines.join("\n")}`);
  const result = exit.value;
  assert.equal(result.kind, "done");
  if (result.kind !== "done") return;
  assert.deepEqual(result.rows.map((r) => r.method).sort(), ["perk", "perk-no-encode", "perk-ttt"]);
  for (const r of result.rows) assert.equal(r.n, 2);
  const metrics = Deno.readTextFileSync(`${result.runDir}/metrics.jsonl`).trim().split("\n")
    .map((l) => JSON.parse(l));
  // One meta-training of 2 steps (n_train × epochs), shared by perk and perk-no-encode.
  const meta = metrics.filter((m) => m.stage === "perk-meta-train");
  assert.deepEqual(meta.map((m) => m.step), [1, 2]);
  assert.ok(meta.every((m) => m.rates.min > 0), "log-parameterised rates stay positive");
  assert.ok(meta.some((m) => typeof m.valAccuracy === "number"), "validation accuracy recorded");
  const preds = Deno.readTextFileSync(`${result.runDir}/predictions.jsonl`).trim().split("\n");
  assert.equal(preds.length, 6);
  await Deno.remove(dir, { recursive: true });
});
