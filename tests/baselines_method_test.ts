/**
 * The baselines as experiment methods: experiments/methods.ts registers the methods of
 * pipeline/baselines/, every method reads only config keys the experiments define, plan with
 * FT-ICR's training shared across test lengths, and run a whole experiment session on a
 * small random model (training, answering with per-problem time and peak bytes, scoring).
 */
import assert from "node:assert/strict";
import { Effect } from "effect";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import type { Gpu } from "../kernels/runtime/gpu.ts";
import { METHOD_NAMES, methodRegistry } from "../experiments/methods.ts";
import { type Node, node, plan } from "../pipeline/experiment/graph.ts";
import {
  type AnyMethod,
  type Cell,
  configKeys,
  methodParams,
} from "../pipeline/experiment/methods.ts";
import { problemsStage } from "../pipeline/experiment/data_stages.ts";
import { method as ftIcr } from "../pipeline/baselines/ft_icr/method.ts";
import { method as promptOnly } from "../pipeline/baselines/prompt_only/method.ts";
import { microModel, runConfig } from "./session_harness.ts";

const registry = methodRegistry();
const resolve = (name: string) => Effect.runPromise(registry.resolve(name));

Deno.test("baselines are registered from pipeline/baselines/ and read defined config keys", async () => {
  for (const [name, own] of [["ft-icr", ftIcr], ["prompt-only", promptOnly]] as const) {
    const m = await resolve(name);
    assert.equal(m.name, name);
    // The registered method is the one pipeline/baselines/ exports.
    assert.equal(m, own);
    for (const k of configKeys(m)) assert.ok(k in FIELDS, `${name} reads undefined key ${k}`);
    for (const profile of ["cpu", "paper"] as const) {
      await Effect.runPromise(methodParams(m, DEFAULTS[profile]));
    }
  }
});

Deno.test("every registered method reads defined config keys, valid under both profiles", async () => {
  assert.deepEqual(
    [...METHOD_NAMES].sort(),
    ["context-mode", "ft-icr", "perk", "perk-no-encode", "perk-ttt", "prompt-only"],
  );
  for (const name of METHOD_NAMES) {
    const m = await resolve(name);
    // context-mode, a rule with no model, is the one method without config keys
    assert.ok(configKeys(m).length > 0 || name === "context-mode", name);
    for (const k of configKeys(m)) assert.ok(k in FIELDS, `${name} reads undefined key ${k}`);
    for (const profile of ["cpu", "paper"] as const) {
      await Effect.runPromise(methodParams(m, DEFAULTS[profile]));
    }
  }
});

const spec = (length: string, split: "train" | "validation" | "test") =>
  node(problemsStage, { dataset: "babilong", task: "qa1", length, split, n: 2, seed: 0 });
const cell = (testLength: string): Cell => ({
  dataset: "babilong",
  task: "qa1",
  trainLength: "1k",
  testLength,
  trainPosition: "rnd",
  testPosition: "rnd",
  train: spec("1k", "train"),
  validation: spec("1k", "validation"),
  test: spec(testLength, "test"),
});

Deno.test("FT-ICR plans one training per train length, shared by every test length", async () => {
  const m: AnyMethod<Gpu> = await resolve("ft-icr");
  const params = await Effect.runPromise(methodParams(m, DEFAULTS.cpu)) as Record<
    string,
    unknown
  >;
  const targets: Record<string, Node<unknown, Gpu>> = {
    a: m.predictions(cell("1k"), params),
    b: m.predictions(cell("2k"), params),
  };
  const p = await Effect.runPromise(plan(targets));
  const count = (stage: string) => p.order.filter((n) => n.node.stage.name === stage).length;
  // The cpu profile's base is the shipped one (base: fixture): loaded, not pretrained.
  assert.equal(count("base-fixture"), 1);
  assert.equal(count("ft-icr-train"), 1);
  assert.equal(count("ft-icr-eval"), 2);
  const train = p.order.find((n) => n.node.stage.name === "ft-icr-train")!;
  assert.equal((train.params as { full: boolean }).full, false);
  assert.equal((train.params as { rank: number }).rank, DEFAULTS.cpu.rank);

  const po: AnyMethod<Gpu> = await resolve("prompt-only");
  const pp = await Effect.runPromise(plan({
    a: po.predictions(cell("1k"), await Effect.runPromise(methodParams(po, DEFAULTS.cpu))),
  }));
  assert.deepEqual(pp.order.map((n) => n.node.stage.name).filter((s) => !/problems/.test(s)), [
    "base-fixture",
    "prompt-eval",
  ]);
  // --set base=pretrain pretrains the base in the run instead.
  const pretrained = await Effect.runPromise(plan({
    a: po.predictions(
      cell("1k"),
      await Effect.runPromise(methodParams(po, { ...DEFAULTS.cpu, base: "pretrain" })),
    ),
  }));
  assert.ok(pretrained.order.some((n) => n.node.stage.name === "pretrain-base"));
  assert.throws(
    () => m.predictions(cell("1k"), { ...params, rope_scaling: "linear" }),
    /rope_scaling "linear": use "none", "linear:F" or "yarn:F"/,
  );
});

Deno.test("experiment session: FT-ICR and prompt-only train, answer and score on a small model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "baselines-" });
  const base = {
    ...DEFAULTS.cpu,
    model: microModel(dir),
    methods: ["ft-icr", "prompt-only"],
    metric: "babilong",
    n_train: 2,
    n_validation: 1,
    n_test: 2,
    epochs: 1,
    max_new_tokens: 4,
  };
  const result = await runConfig(dir, "baselines-test", base);
  const rows = result.rows;
  assert.deepEqual(rows.map((r) => r.method).sort(), ["ft-icr", "prompt-only"]);
  for (const r of rows) {
    assert.equal(r.n, 2);
    assert.ok(r.ms_per_problem > 0 && r.peak_bytes > 0, JSON.stringify(r));
  }
  const metrics = Deno.readTextFileSync(`${result.runDir}/metrics.jsonl`);
  assert.match(metrics, /"stage":"ft-icr-train"/);
  await Deno.remove(dir, { recursive: true });
});
