/**
 * PERK and its controls as experiment methods, end to end through the runner on a micro
 * model: perk and perk-no-encode share one meta-training (the same cache key), perk-ttt
 * trains nothing, every method answers every test problem, and the run folder has the
 * predictions of all three.
 */
import assert from "node:assert/strict";
import { DEFAULTS } from "../experiments/defaults.ts";
import { microModel, readJsonl, runConfig } from "./session_harness.ts";

Deno.test("perk, perk-no-encode and perk-ttt run as methods; the first two share one meta-training", async () => {
  const dir = await Deno.makeTempDir();
  const base = {
    ...DEFAULTS.cpu,
    model: microModel(dir),
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
  const result = await runConfig(dir, "perk-methods-test", base);
  assert.deepEqual(result.rows.map((r) => r.method).sort(), ["perk", "perk-no-encode", "perk-ttt"]);
  for (const r of result.rows) assert.equal(r.n, 2);
  const metrics = readJsonl(`${result.runDir}/metrics.jsonl`);
  // One meta-training of 2 steps (n_train × epochs), shared by perk and perk-no-encode.
  const meta = metrics.filter((m) => m.stage === "perk-meta-train");
  assert.deepEqual(meta.map((m) => m.step), [1, 2]);
  assert.ok(meta.every((m) => m.rates.min > 0), "log-parameterised rates stay positive");
  // Per layer too (the micro model has one): between the min and the max of all rates.
  assert.ok(
    meta.every((m) =>
      m.ratesByLayer.length === 1 && m.ratesByLayer[0] >= m.rates.min * (1 - 1e-6) &&
      m.ratesByLayer[0] <= m.rates.max * (1 + 1e-6)
    ),
  );
  assert.ok(meta.some((m) => typeof m.valAccuracy === "number"), "validation accuracy recorded");
  const preds = readJsonl(`${result.runDir}/predictions.jsonl`);
  assert.equal(preds.length, 6);
  await Deno.remove(dir, { recursive: true });
});
