/**
 * The inner-rate probe on a micro model (random weights over the tiny compact vocabulary,
 * saved as a model directory the way pretrain.ts writes one): a larger constant rate lowers
 * the context loss more, accuracies are fractions over the right n, the table shows every
 * rate and the no-encode control, and bad flags are refused naming the flag.
 */
import assert from "node:assert/strict";
import { saveHfModel } from "../pipeline/model/hf_loader.ts";
import { profileConfig } from "../pipeline/base/pretrain.ts";
import { TINY_VOCAB } from "../pipeline/base/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import {
  main,
  parseProbeArgs,
  probeTable,
  runProbe,
  UsageError,
} from "../pipeline/perk/probe_cli.ts";
import { testRuntime } from "./testing.ts";

const rt = await testRuntime();

Deno.test("probe: a larger inner rate memorises the context more; accuracies over n", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perk-probe-" });
  try {
    const config = profileConfig("micro", TINY_VOCAB);
    saveHfModel(dir, { config, weights: initRandomWeights(config, 5) });
    Deno.copyFileSync(
      new URL("../fixtures/models/tiny/compact_vocab.json", import.meta.url),
      `${dir}/compact_vocab.json`,
    );
    const args = parseProbeArgs([
      "--model",
      dir,
      "--length",
      "256",
      "--n",
      "2",
      "--steps",
      "2",
      "--rates",
      "1e-3,1e-2",
      "--max-new-tokens",
      "3",
    ]);
    assert.ok(args !== "help");
    const lines: string[] = [];
    const t0 = performance.now();
    const rowsSoFar: number[] = [];
    const r = await runProbe(args, rt, (l, sofar) => {
      lines.push(l);
      rowsSoFar.push(sofar.rows.length);
    });
    console.log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s; ${lines.join("; ")}`);
    assert.equal(lines.length, 3, "one progress line for θ₀, then one per rate");
    assert.deepEqual(rowsSoFar, [0, 1, 2], "each rate's row is reported as it finishes");
    assert.deepEqual(r.rows.map((x) => x.rate), [1e-3, 1e-2]);
    const [small, large] = r.rows;
    for (const row of r.rows) {
      assert.ok(Number.isFinite(row.context.before) && Number.isFinite(row.context.after));
      assert.ok(Number.isFinite(row.facts.before) && Number.isFinite(row.facts.after));
      assert.equal(row.context.before, small.context.before, "the same θ₀ losses for each rate");
    }
    assert.ok(
      large.context.after / large.context.before < small.context.after / small.context.before,
      `rate 1e-2 should lower the context loss more: ${JSON.stringify(r.rows)}`,
    );
    assert.ok(large.context.after < large.context.before);
    for (const a of [r.control, ...r.rows]) {
      assert.equal(a.n, 2);
      assert.ok(a.accuracy >= 0 && a.accuracy <= 1 && a.correct <= a.n);
    }
    assert.ok(r.tokens.facts > 0 && r.tokens.facts < r.tokens.context, JSON.stringify(r.tokens));
    assert.ok(r.tokens.support > 0 && r.tokens.support <= r.tokens.facts);
    assert.equal(r.unlocated, 0);
    assert.ok(Math.abs(r.tokenWeight - Math.LN2 / 3) < 1e-6, `${r.tokenWeight}`);
    const table = probeTable(args, r);
    assert.match(table, /\| no encode \(θ₀\) \| .* \| \d\/2 \(\d+\.\d%\) \|/);
    assert.match(table, /\| 1e-3 \| \d+\.\d{3} → \d+\.\d{3} \(×\d\.\d{3}\) \|/);
    assert.match(table, /\| 1e-2 \| /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probe CLI: bad flags are refused naming the flag", async () => {
  const refuse = (argv: string[], re: RegExp) =>
    assert.throws(() => parseProbeArgs(["--model", "m", ...argv]), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, re);
      return true;
    });
  refuse(["--rates", "1e-3,abc"], /--rates "1e-3,abc": "abc" is not a number > 0/);
  refuse(["--rates", "1e-3,-1"], /--rates .*"-1" is not a number > 0/);
  refuse(["--rates", ""], /--rates/);
  refuse(["--split", "test"], /--split test: .*must not see test problems/);
  refuse(["--length", "12"], /--length "12": use 1k, .* or a token count ≥ 64/);
  refuse(["--task", "qa9"], /--task "qa9": use qa1, qa2, qa3/);
  refuse(["--steps", "0"], /--steps "0": give an integer ≥ 1/);
  refuse(["--alpha", "x"], /--alpha "x": give a number > 0/);
  refuse(["--bogus", "1"], /bogus/);
  assert.throws(() => parseProbeArgs([]), /--model DIR\|tiny is required/);
  // The command itself: exit status 2 and the message on stderr, before any GPU work.
  const errors: string[] = [];
  const original = console.error;
  console.error = (...x: unknown[]) => errors.push(x.join(" "));
  try {
    assert.equal(await main(["--model", "m", "--rates", "fast"]), 2);
  } finally {
    console.error = original;
  }
  assert.match(errors.join("\n"), /probe: --rates "fast"/);
});
