/**
 * FT-ICR learns to use the context: a small model fine-tuned for a few hundred steps on
 * QA1-1K in-context prompts beats the majority-label rate on held-out problems (greedy
 * answers, BabiLong's scorer; the bar is the most frequent answer among the test problems,
 * which no constant answer can beat).
 *
 * Opt-in (PERK_SLOW_TESTS=1): on this repository's CPU adapter (lavapipe, 2 shared cores) it
 * takes hours, and it has not passed there. Measured (full fine-tuning, greedy answers on 64
 * test problems; every run learned the answer format exactly and then answered one or two
 * constant locations — the retrieval never appeared):
 *  - 2026-11-26, micro profile (1 layer, dim 32) pretrained 100 steps, QA1-1K, 300 steps × 8,
 *    lr 3e-3: answer-token loss 0.224, 12.5% vs the training majority's 12.5% (48 min with
 *    another job);
 *  - the same at 128-token contexts: loss 0.204, 10.9% vs 12.5% (8 min);
 *  - the cpu profile (4 layers, dim 128) pretrained 100 steps, 128 tokens, 300 steps × 8,
 *    lr 2e-3: loss 0.193, 15.6% — always "kitchen", which beat the training majority's 12.5%
 *    on these 64 problems by chance (49 min; hence today's bar: the test set's most frequent
 *    answer, "garden", 21.9% on the same 64 problems at 128 tokens and at 1K);
 *  - earlier, at 128 tokens: a random dim-64 model after 150 steps × 8, and the cpu profile
 *    pretrained 150 steps then fine-tuned 30 steps × 8: 22.9% vs 22.9%; 17.2% vs 18.8%.
 * PyTorch shows the same plateau (bench/torch_ft_icr.py, same examples, config, init and recipe,
 * from scratch; 2026-11-26, QA1 at 128 tokens, 8 per step, lr 3e-3): the format is exact from
 * step 50, and after 150 steps the loss is 0.195 with the name right 21% (chance 25%) and the
 * location 12.5% — the limit is how many examples these small models need, not our kernels.
 * Knobs: PERK_TEST_BASE (a model directory; default: pretrain PERK_TEST_PROFILE = cpu for
 * PERK_TEST_BASE_STEPS = 300 steps), PERK_TEST_LENGTH (1k), PERK_TEST_STEPS (300),
 * PERK_TEST_BATCH (4), PERK_TEST_LR (1e-3), PERK_TEST_N (64 test problems).
 */
import assert from "node:assert/strict";
import { generateProblems, type Problem } from "../pipeline/data/problems.ts";
import { babilongCorrect } from "../pipeline/data/scorers.ts";
import { answerInContext, promptsOf } from "../pipeline/baselines/answer.ts";
import { encodeIcr } from "../pipeline/baselines/in_context.ts";
import { ftIcrTrain } from "../pipeline/baselines/ft_icr/train.ts";
import { trainable } from "../pipeline/baselines/ft_icr/trainable.ts";
import { CompactTokenizer } from "../pipeline/model/compact_vocab.ts";
import { tinyVocab } from "../pipeline/model/gpu_pretrain_data.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { loadModel, loadTokenizerFor } from "../pipeline/model/load.ts";
import { pretrain, type PretrainProfile } from "../pipeline/model/pretrain.ts";
import type { Model } from "../pipeline/model/weights.ts";
import type { TextTokenizer } from "../pipeline/tokenizer/tokenizer.ts";
import { testRuntime } from "./testing.ts";

const SLOW = Deno.env.get("PERK_SLOW_TESTS") === "1";
if (!SLOW) {
  console.log(
    "skip: FT-ICR QA1-1K learning test is opt-in (PERK_SLOW_TESTS=1; minutes on a real GPU, " +
      "hours on lavapipe)",
  );
}
const env = (k: string, d: string) => Deno.env.get(k) ?? d;

Deno.test({
  name: "FT-ICR on QA1-1K in-context beats the majority-label rate on held-out problems",
  ignore: !SLOW,
  fn: async () => {
    const rt = await testRuntime();
    let base: Model, tok: TextTokenizer;
    const dir = Deno.env.get("PERK_TEST_BASE");
    if (dir) {
      base = loadModel(dir);
      tok = loadTokenizerFor(dir, base);
    } else {
      const r = await pretrain(rt, {
        profile: env("PERK_TEST_PROFILE", "cpu") as PretrainProfile,
        steps: Number(env("PERK_TEST_BASE_STEPS", "300")),
      });
      base = { config: r.config, weights: r.weights };
      tok = new CompactTokenizer(tinyVocab());
    }
    const length = env("PERK_TEST_LENGTH", "1k"), steps = Number(env("PERK_TEST_STEPS", "300"));
    const batch = Number(env("PERK_TEST_BATCH", "4"));
    const spec = { dataset: "babilong" as const, task: "qa1" as const, length, seed: 0 };
    const train = generateProblems({ ...spec, split: "train", n: steps * batch });
    const val = generateProblems({ ...spec, split: "validation", n: 16 });
    const test = generateProblems({ ...spec, split: "test", n: Number(env("PERK_TEST_N", "64")) });
    const enc = (ps: Problem[]) => ps.map((p) => encodeIcr(base, tok, p, 0));
    const t = trainable(base, { kind: "full" });
    const model = GpuModel.upload(rt, base);
    const t0 = performance.now();
    const r = await ftIcrTrain(model, t, enc(train), enc(val), {
      lr: Number(env("PERK_TEST_LR", "1e-3")),
      epochs: 1,
      patience: 10,
      seed: 0,
      batch,
      evalsPerEpoch: 4,
    });
    const trainSeconds = (performance.now() - t0) / 1000;
    model.dispose();
    const tuned = GpuModel.upload(rt, {
      config: base.config,
      weights: new Map(t.names.map((n, i) => [n, { shape: t.shapes[i], data: r.best[i] }])),
    });
    const preds = await answerInContext(tuned, tok, test, promptsOf(base, tok, test, 0), {
      maxNewTokens: 24,
    });
    tuned.dispose();
    const correct = test.filter((p, i) =>
      babilongCorrect(preds[i].prediction, p.answer, p.question)
    );
    // The bar is the best constant answer on the test problems themselves (not the training
    // majority): a model that always names one location can beat the training majority by the
    // test set's sampling noise alone — the cpu profile at 128 tokens did (always "kitchen":
    // 15.6% vs the training majority's 12.5%; "garden" would have scored 21.9%).
    const counts = new Map<string, number>();
    for (const p of test) counts.set(p.answer, (counts.get(p.answer) ?? 0) + 1);
    const [majority, majorityCount] = [...counts].sort((a, b) => b[1] - a[1])[0];
    const majorityRate = majorityCount / test.length;
    const accuracy = correct.length / test.length;
    // What was learned, token kind by token kind (QA1's answer form): the format, the name
    // (copied from the question) and the location (read from the context).
    const form = /^\s*The most recent location of (\w+) is <output>(\w+)<\/output>\./;
    const parsed = preds.map((x) => form.exec(x.prediction));
    const rate = (ok: (m: RegExpExecArray, p: Problem) => boolean) =>
      (parsed.filter((m, i) => m && ok(m, test[i])).length / test.length).toFixed(3);
    const kinds = `format ${rate(() => true)}, name ${
      rate((m, p) => p.question === `Where is ${m[1]}?`)
    }, location ${rate((m, p) => m[2] === p.answer)}`;
    const ms = preds.reduce((a, p) => a + p.ms, 0) / preds.length;
    const peak = Math.max(...preds.map((p) => p.peakBytes));
    console.log(
      `QA1-${length}: accuracy ${accuracy.toFixed(3)} vs the best constant answer (${majority}) ` +
        `${majorityRate.toFixed(3)}; ${r.stepsDone} steps in ${trainSeconds.toFixed(0)} s, ` +
        `best validation loss ${r.bestValLoss.toFixed(3)} at step ${r.bestStep}; ` +
        `answers right in ${kinds}; ` +
        `${ms.toFixed(0)} ms and ${(peak / 2 ** 20).toFixed(0)} MiB per problem; ` +
        `e.g. ${JSON.stringify(preds[0].prediction)}`,
    );
    assert.ok(
      accuracy > majorityRate,
      `accuracy ${accuracy} ≤ the test majority rate ${majorityRate} (always "${majority}")`,
    );
  },
});
