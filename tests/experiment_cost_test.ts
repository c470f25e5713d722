/**
 * `--dry-run` time estimates (pipeline/experiment/cost.ts): the stages' cost models against the
 * figures they were built from, and every shipped experiment's cpu profile within 90 minutes
 * of the reference host with no stage left unestimated.
 */
import assert from "node:assert/strict";
import { Effect } from "effect";
import { resolveConfig } from "../pipeline/experiment/config.ts";
import { buildGraph, sweepPoints } from "../pipeline/experiment/experiment.ts";
import { plan } from "../pipeline/experiment/graph.ts";
import type { AnyMethod } from "../pipeline/experiment/methods.ts";
import { costLine, formatDuration, nodeCost, planCost } from "../pipeline/experiment/cost.ts";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import { EXPERIMENTS } from "../experiments/registry.ts";
import { methodRegistry } from "../experiments/methods.ts";
import { calibration } from "../pipeline/perk/calibrate.ts";
import { testRuntime } from "./testing.ts";

const registry = methodRegistry();

async function planOf(name: string, sets: string[] = []) {
  const exp = EXPERIMENTS.get(name)!;
  return await Effect.runPromise(Effect.gen(function* () {
    const r = yield* resolveConfig(
      FIELDS,
      { defaults: DEFAULTS, overrides: exp.overrides, sweep: exp.sweep },
      { profile: "cpu", sets },
    );
    const points = yield* sweepPoints(r);
    const methods = new Map<string, AnyMethod>();
    for (const pt of points) {
      for (const m of pt.core.methods) methods.set(m, yield* registry.resolve(m));
    }
    const g = yield* buildGraph(points, methods);
    return yield* plan(g.targets);
  }));
}

const all = (p: { order: readonly { key: string }[] }) => new Set(p.order.map((n) => n.key));

Deno.test("cost: the main job's estimate matches its measured stage times (32 min 10 s)", async () => {
  const p = await planOf("babilong-qa2-8k");
  const by = (stage: string, steps?: number) =>
    p.order.filter((n) =>
      n.node.stage.name === stage &&
      (steps === undefined || (n.params as { steps: number }).steps === steps)
    ).map((n) => nodeCost(p, n)!);
  // Measured 2026-12-07 (pipeline/experiment/cost.ts): 574 s, 954 s, 6.3 s, 113 s, 281 s.
  const near = (got: number, want: number) =>
    assert.ok(Math.abs(got - want) <= 0.15 * want, `estimate ${got.toFixed(0)} s vs ${want} s`);
  near(by("perk-meta-train")[0], 574);
  near(by("perk-answer", 4)[0], 954);
  near(by("perk-answer", 0)[0], 6.3);
  near(by("ft-icr-train")[0], 113);
  near(by("ft-icr-eval")[0], 281);
  const { seconds, unknown } = planCost(p, all(p));
  assert.deepEqual(unknown, []);
  near(seconds, 32 * 60 + 10);
  assert.match(costLine(p, all(p)), /^estimate: ~3\d min for \d+ stage runs on the reference host/);
  assert.equal(costLine(p, new Set()), "estimate: nothing to compute (every stage is cached)");
});

Deno.test("cost: the meta-training estimate grows with steps, length and retained steps", async () => {
  const meta = async (sets: string[]) => {
    const p = await planOf("babilong-qa1-1k", sets);
    return nodeCost(p, p.order.find((n) => n.node.stage.name === "perk-meta-train")!)!;
  };
  const base = await meta([]);
  assert.ok(Math.abs(await meta(["n_train=600"]) / base - 2) < 0.05);
  assert.ok(await meta(["train_lengths=[512]"]) > 1.9 * base);
  assert.ok(await meta(["truncate=0"]) > 2 * base); // four retained steps instead of one
  // Another model: no cost model, named in the line.
  const p = await planOf("babilong-qa1-1k", ["model=/nonexistent/model"]);
  const { unknown } = planCost(p, all(p));
  assert.ok(unknown.includes("perk-meta-train") && unknown.includes("perk-answer"));
  assert.match(costLine(p, all(p)), /no estimate for .*perk-meta-train/);
});

Deno.test("cost: every shipped experiment's cpu profile fits 90 minutes of the reference host", async () => {
  const rows: string[] = [];
  for (const name of EXPERIMENTS.keys()) {
    const p = await planOf(name);
    const { seconds, unknown } = planCost(p, all(p));
    rows.push(`${name} ${formatDuration(seconds)}`);
    assert.deepEqual(unknown, [], `${name}: stages without a cost model`);
    assert.ok(seconds <= 90 * 60, `${name}: ~${formatDuration(seconds)} > 90 min`);
  }
  console.log(rows.join("\n"));
});

Deno.test("cost: durations read as seconds, minutes or hours", () => {
  assert.equal(formatDuration(0.1), "<1 s");
  assert.equal(formatDuration(42), "42 s");
  assert.equal(formatDuration(600), "10 min");
  assert.equal(formatDuration(3 * 3600), "3.0 h");
});

Deno.test("cost: a calibration scales the estimate to this machine and is measured once per adapter", async () => {
  const p = await planOf("babilong-qa2-8k");
  const ref = planCost(p, all(p)).seconds;
  const line = costLine(p, all(p), { factor: 2, adapter: "fast card" });
  assert.match(line, new RegExp(`^estimate: ~${formatDuration(ref / 2)} for \\d+ stage runs here`));
  assert.match(line, /fast card measured at 2\.00× the speed of the reference host/);

  const dir = await Deno.makeTempDir();
  const rt = await testRuntime();
  const logs: string[] = [];
  const c = await calibration(rt, "test-adapter", `${dir}/calibration.json`, (l) => logs.push(l));
  assert.ok(c.innerStepMsPerToken > 0 && Number.isFinite(c.speed));
  assert.equal(logs.length, 1);
  const again = await calibration(
    rt,
    "test-adapter",
    `${dir}/calibration.json`,
    (l) => logs.push(l),
  );
  assert.deepEqual(again, c); // from the file: not measured again
  assert.equal(logs.length, 1);
  await Deno.remove(dir, { recursive: true });
});
