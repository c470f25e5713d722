/**
 * One experiment config run through the real session (runner, cache, run folder) on the test
 * runtime, for tests that need whole methods end to end: a temporary cache and runs folder,
 * the registered methods, the cpu profile's request.
 */
import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { Gpu } from "../kernels/runtime/gpu.ts";
import { FIELDS } from "../experiments/defaults.ts";
import { methodRegistry } from "../experiments/methods.ts";
import type { Config } from "../pipeline/experiment/config.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runSession } from "../pipeline/experiment/session.ts";
import { saveHfModel } from "../pipeline/model/hf_loader.ts";
import { tinyConfig } from "../pipeline/base/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { testRuntime } from "./testing.ts";

/** A 1-layer random model over the tiny compact vocabulary, saved as `${dir}/model`. */
export function microModel(dir: string): string {
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
  return `${dir}/model`;
}

/** Run `config` (a whole cpu-profile config) in `dir`: the session's exit and its output lines. */
export async function runConfigExit(dir: string, name: string, config: Config) {
  const lines: string[] = [];
  const rt = await testRuntime();
  const exit = await Effect.runPromiseExit(
    runSession({
      experiment: defineExperiment({ name, title: "t", description: "t" }),
      fields: FIELDS,
      defaults: { cpu: config, paper: config },
      registry: methodRegistry(),
      request: { profile: "cpu" },
      cache: new StageCache(`${dir}/cache`),
      runsRoot: `${dir}/runs`,
      adapter: { line: "adapter: test", record: null, isCpu: true },
      out: (l) => lines.push(l),
      warn: () => {},
    }).pipe(Effect.provideService(Progress, memoryProgress()), Effect.provideService(Gpu, rt)),
  );
  return { exit, lines };
}

/** Run `config` in `dir`; asserts success, returns the run. */
export async function runConfig(dir: string, name: string, config: Config) {
  const { exit, lines } = await runConfigExit(dir, name, config);
  assert.ok(Exit.isSuccess(exit), `${exit}\n${lines.join("\n")}`);
  const result = exit.value;
  if (result.kind !== "done") throw new Error(`run did not finish: ${result.kind}`);
  return result;
}

/** The lines of a run folder's JSONL file, parsed. */
export const readJsonl = (path: string) =>
  Deno.readTextFileSync(path).trim().split("\n").map((l) => JSON.parse(l));
