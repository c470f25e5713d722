/**
 * PERK learns (issue: "PERK learns"): on short QA1 problems (256-token contexts), PERK
 * meta-trained from the shipped tiny base must answer at least 15 points more questions than
 * `perk-no-encode` — the same meta-training with the inner loop removed — and the lower end
 * of its 95% Wilson interval must clear the best constant answer's rate on the same test
 * problems. Run through the experiment runner with the cpu profile's defaults (fixture base,
 * log-rates, answer target), so it tests what `deno task experiment` runs.
 *
 * Opt-in (PERK_SLOW_TESTS=1) and NOT PASSING yet in perk: the same regime passes in the
 * PyTorch prototype (bench/torch_perk.py: 40.0% vs 15.0%, constant 21%, n = 200 after 300
 * outer steps). With 150 steps perk collapsed onto one answer under the cosine schedule and
 * reached 30.0% [21.9, 39.6] vs 21.0% (constant 23%) under the constant one
 * (pipeline/perk/README.md). It stays here so the next session reruns exactly this check.
 *
 * Sizes (env): PERK_LEARN_TRAIN meta-training problems (one outer step each), PERK_LEARN_TEST
 * test problems. PERK_LEARN_ZERO_RATES=1 forces the inner rates to ~0 (raw rates of 1e-30
 * that the outer loop cannot move): then PERK cannot read the context and the test must fail
 * — the control that shows the margin comes from encoding.
 */
import assert from "node:assert/strict";
import { DEFAULTS } from "../experiments/defaults.ts";
import { wilson } from "../pipeline/experiment/report.ts";
import { readJsonl, runConfig } from "./session_harness.ts";

const num = (k: string, d: number) => Number(Deno.env.get(k) ?? d);
const N_TRAIN = num("PERK_LEARN_TRAIN", 40), N_TEST = num("PERK_LEARN_TEST", 60);
const ZERO = Deno.env.get("PERK_LEARN_ZERO_RATES") === "1";
const SLOW = Deno.env.get("PERK_SLOW_TESTS") === "1";

if (!SLOW) {
  console.log(
    "skip: PERK's QA1 learning test is opt-in (PERK_SLOW_TESTS=1): it meta-trains for 15–25 " +
      "minutes on lavapipe today, and it does not pass yet (pipeline/perk/README.md)",
  );
}

Deno.test({
  ignore: !SLOW,
  name: `PERK learns QA1 at 256 tokens: ≥ 15 points over perk-no-encode, above the best constant`,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const config = {
      ...DEFAULTS.cpu,
      tasks: ["qa1"],
      methods: ["perk", "perk-no-encode"],
      train_lengths: ["256"],
      test_lengths: ["256"],
      n_train: N_TRAIN,
      n_validation: 4,
      n_test: N_TEST,
      epochs: 1,
      ...(ZERO ? { lr_param: "raw", inner_lr: 1e-30, outer_lr_rates: 1e-30 } : {}),
      // Any other config keys, e.g. PERK_LEARN_SET='{"outer_lr_weighting":1e-30}'.
      ...JSON.parse(Deno.env.get("PERK_LEARN_SET") ?? "{}"),
    };
    const t0 = performance.now();
    const result = await runConfig(dir, "perk-learning", config);
    const metrics = readJsonl(`${result.runDir}/metrics.jsonl`)
      .filter((m) => m.stage === "perk-meta-train");
    for (const m of metrics) {
      if (m.valLoss !== undefined || m.step % 10 === 0) {
        console.log(
          `  step ${m.step}: outer loss ${m.loss.toFixed(3)}` +
            (m.valLoss === undefined ? "" : `, validation loss ${m.valLoss.toFixed(3)}`) +
            (m.valAccuracy === undefined ? "" : `, accuracy ${m.valAccuracy.toFixed(3)}`) +
            `, rates ${m.rates.min.toExponential(1)}…${m.rates.max.toExponential(1)}`,
        );
      }
    }
    const preds = readJsonl(`${result.runDir}/predictions.jsonl`);
    const acc = (m: string) => {
      const xs = preds.filter((p) => p.method === m);
      return { k: xs.reduce((s, p) => s + p.correct, 0), n: xs.length };
    };
    const perk = acc("perk"), ctl = acc("perk-no-encode");
    const counts = new Map<string, number>();
    for (const p of preds.filter((p) => p.method === "perk")) {
      counts.set(p.target, (counts.get(p.target) ?? 0) + 1);
    }
    const constant = Math.max(...counts.values()) / perk.n;
    const [lo, hi] = wilson(perk.k, perk.n);
    const [clo, chi] = wilson(ctl.k, ctl.n);
    console.log(
      `  perk ${perk.k}/${perk.n} = ${(perk.k / perk.n).toFixed(3)} [${lo.toFixed(3)}, ${
        hi.toFixed(3)
      }]; perk-no-encode ${ctl.k}/${ctl.n} = ${(ctl.k / ctl.n).toFixed(3)} [${clo.toFixed(3)}, ${
        chi.toFixed(3)
      }]; best constant answer ${constant.toFixed(3)}; ${
        ((performance.now() - t0) / 1000).toFixed(0)
      } s${ZERO ? " (inner rates forced to ~0)" : ""}`,
    );
    assert.equal(perk.n, N_TEST);
    assert.ok(
      perk.k / perk.n >= ctl.k / ctl.n + 0.15,
      `perk ${perk.k / perk.n} is not 15 points over perk-no-encode ${ctl.k / ctl.n}`,
    );
    assert.ok(lo > constant, `perk's 95% lower bound ${lo} ≤ the best constant answer ${constant}`);
    await Deno.remove(dir, { recursive: true });
  },
});
