/**
 * FT-ICR learns to use the context: a small model fine-tuned for a few hundred steps on
 * QA1-1K in-context prompts beats the majority-label rate on held-out problems (greedy
 * answers, BabiLong's scorer; the bar is the most frequent answer among the test problems,
 * which no constant answer can beat). The base's own accuracy on the same prompts, before
 * fine-tuning, is printed beside it.
 *
 * The base. A tiny model pretrained on prose alone cannot learn BabiLong retrieval from
 * FT-ICR's 1,200 problems: every such run learned the answer format exactly and then named
 * one or two constant rooms (below). A real pretrained LM brings the retrieval skill; the
 * default base here gets some of it from a curriculum of bAbI tracking stories
 * (pipeline/base/pretrain_curriculum.ts RETRIEVAL_CURRICULUM; tracking_stories.ts): dense
 * stories asking about anyone but the last mover (1,000 steps of 4 × 256 tokens), then about
 * anyone (300 steps), then sparse stories, prose between the facts, in 1,280-token windows
 * (300 steps). FT-ICR then has to apply it to QA1-1K under BabiLong's instructions.
 *
 * Opt-in (PERK_SLOW_TESTS=1). PASSES with the defaults: 2026-11-27, this repository's CPU
 * adapter (lavapipe, 2 cores), from scratch: 28.9% (37 of 128) vs the best constant answer's
 * 22.7% ("hallway", 29 of 128; one-sided binomial p = 0.060 against that rate), "the last room
 * mentioned" 42.2%; the base before fine-tuning 1.6% (it does not know the answer form); format
 * and name right in 100%; the curriculum's stages 1,584 s, 479 s and 796 s (held-out story
 * rooms right: 27.0%, 39.2%, 40.9%), then 300 steps × 4 in 2,593 s, best validation loss 0.095
 * at step 300 (0.105 with the one-stage base below); 107 min 36 s in all, 3.2 s per problem and
 * at most 568 MiB, 6.6 GB peak RSS. The run is deterministic on one adapter: the curriculum gave
 * bit-for-bit the weights of the same stages run by hand the day before, and the first 64 test
 * problems came out exactly as with that base given as PERK_TEST_BASE (19 of 64 = 29.7% vs
 * "garden"'s 21.9%, 51 min 58 s). The margin is thin: on another adapter (a GPU's rounding) the
 * result can land on either side. Asked in story form right after QA1-1K contexts without
 * fine-tuning, the curriculum's base names the right room in 29.7% of the first 64 (and the
 * last room mentioned in 59%); after its first stage alone, 21.9%; after the second, 21.9%.
 *
 * Failed runs, for the record:
 *  - the first stage alone as the base, lr 1e-3: 17.2% vs 21.9% in PERK's format (facts
 *    shuffled into segments, tagged "{Actor} Event {k}:", where the answer is the actor's
 *    highest k) and 17.2% in BabiLong's (52 min 3 s, best validation loss 0.105), format and
 *    name 100%. That base asks only about others than the last mover, while QA1 asks about
 *    the last mover about half the time: on QA1's bare stories (no haystack) it is right in
 *    23.4%; after the "anyone" stage, 32.8%;
 *  - sparse stories from scratch (1 × 1,024 tokens a step) learned nothing: 19.2% of
 *    held-out story rooms after 1,200 steps, 18.2% after 700 asking about anyone
 *    (pipeline/model/README.md has the table);
 *  - bases pretrained without stories (full fine-tuning, greedy answers on 64 test
 *    problems, PERK's format): micro profile (1 layer, dim 32) pretrained 100 steps,
 *    QA1-1K, 300 steps × 8, lr 3e-3: 12.5% vs the training majority's 12.5% (10.9% at
 *    128-token contexts); cpu profile pretrained 100 steps, 128 tokens, 300 steps × 8,
 *    lr 2e-3: 15.6%, always "kitchen"; PyTorch on the same examples and recipe
 *    (bench/torch_ft_icr.py): the format exact from step 50, the room 12.5% after 150 steps.
 * Knobs: PERK_TEST_BASE (a model directory; default: pretrain RETRIEVAL_CURRICULUM, about
 * 48 minutes here), PERK_TEST_LENGTH (1k), PERK_TEST_STEPS (300), PERK_TEST_BATCH (4),
 * PERK_TEST_LR (5e-4), PERK_TEST_N (128 test problems), PERK_TEST_FORMAT (babilong | perk).
 */
import assert from "node:assert/strict";
import { type ContextFormat, generateProblems, type Problem } from "../pipeline/data/problems.ts";
import { babilongCorrect } from "../pipeline/data/scorers.ts";
import { LOCATIONS } from "../pipeline/data/babi_world.ts";
import { answerInContext, promptsOf } from "../pipeline/baselines/answer.ts";
import { encodeIcr } from "../pipeline/baselines/in_context.ts";
import { ftIcrTrain } from "../pipeline/baselines/ft_icr/train.ts";
import { trainable } from "../pipeline/baselines/ft_icr/trainable.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { loadModel, loadTokenizerFor } from "../pipeline/model/load.ts";
import { pretrainCurriculum, RETRIEVAL_CURRICULUM } from "../pipeline/base/pretrain_curriculum.ts";
import type { Model } from "../pipeline/model/weights.ts";
import type { TextTokenizer } from "../pipeline/tokenizer/tokenizer.ts";
import { testRuntime } from "./testing.ts";

const SLOW = Deno.env.get("PERK_SLOW_TESTS") === "1";
if (!SLOW) {
  console.log(
    "skip: FT-ICR QA1-1K learning test is opt-in (PERK_SLOW_TESTS=1; minutes on a real GPU, " +
      "about 110 minutes on lavapipe with the default base, 60 with PERK_TEST_BASE)",
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
      const stages = await pretrainCurriculum(rt, RETRIEVAL_CURRICULUM, (i, p) => {
        if (p.step % 100 === 0) {
          console.log(`  pretrain stage ${i + 1} step ${p.step}: loss ${p.loss.toFixed(4)}`);
        }
      });
      stages.forEach((s, i) =>
        console.log(
          `  pretrain stage ${i + 1}: ${s.seconds.toFixed(0)} s, held-out story rooms ` +
            `${(100 * (s.storyAccuracy ?? 0)).toFixed(1)}% right`,
        )
      );
      const r = stages.at(-1)!;
      base = { config: r.config, weights: r.weights };
      tok = new CompactTokenizer(tinyVocab());
    }
    const length = env("PERK_TEST_LENGTH", "1k"), steps = Number(env("PERK_TEST_STEPS", "300"));
    const batch = Number(env("PERK_TEST_BATCH", "4"));
    // BabiLong's own recipe (facts in their order between haystack sentences), not PERK's
    // segments (facts shuffled, each tagged "{Actor} Event {k}:"): there the answer is the
    // room of the actor's highest k, which needs comparing counters besides retrieval.
    const format = env("PERK_TEST_FORMAT", "babilong") as ContextFormat;
    const spec = { dataset: "babilong" as const, task: "qa1" as const, length, seed: 0, format };
    const train = generateProblems({ ...spec, split: "train", n: steps * batch });
    const val = generateProblems({ ...spec, split: "validation", n: 16 });
    const test = generateProblems({ ...spec, split: "test", n: Number(env("PERK_TEST_N", "128")) });
    const enc = (ps: Problem[]) => ps.map((p) => encodeIcr(base, tok, p, 0));
    const prompts = promptsOf(base, tok, test, 0);
    const model = GpuModel.upload(rt, base);
    const before = await answerInContext(model, tok, test, prompts, { maxNewTokens: 24 });
    const t = trainable(base, { kind: "full" });
    const t0 = performance.now();
    const r = await ftIcrTrain(model, t, enc(train), enc(val), {
      lr: Number(env("PERK_TEST_LR", "5e-4")),
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
    const preds = await answerInContext(tuned, tok, test, prompts, { maxNewTokens: 24 });
    tuned.dispose();
    const rightEach = (xs: { prediction: string }[]) =>
      test.map((p, i) => babilongCorrect(xs[i].prediction, p.answer, p.question));
    const right = rightEach(preds);
    const correct = right.filter(Boolean).length;
    const baseCorrect = rightEach(before).filter(Boolean).length;
    // The bar is the best constant answer on the test problems themselves (not the training
    // majority): a model that always names one location can beat the training majority by the
    // test set's sampling noise alone — the cpu profile at 128 tokens did (always "kitchen":
    // 15.6% vs the training majority's 12.5%; "garden" would have scored 21.9%).
    const counts = new Map<string, number>();
    for (const p of test) counts.set(p.answer, (counts.get(p.answer) ?? 0) + 1);
    const [majority, majorityCount] = [...counts].sort((a, b) => b[1] - a[1])[0];
    const majorityRate = majorityCount / test.length;
    const accuracy = correct / test.length;
    // What was learned, token kind by token kind (QA1's answer form): the format, the name
    // (copied from the question) and the location (read from the context).
    const form = /^\s*The most recent location of (\w+) is <output>(\w+)<\/output>\./;
    const parsed = preds.map((x) => form.exec(x.prediction));
    const rate = (ok: (m: RegExpExecArray, p: Problem) => boolean) =>
      (parsed.filter((m, i) => m && ok(m, test[i])).length / test.length).toFixed(3);
    const kinds = `format ${rate(() => true)}, name ${
      rate((m, p) => p.question === `Where is ${m[1]}?`)
    }, location ${rate((m, p) => m[2] === p.answer)}`;
    // A context-reading heuristic for scale: name the last room the context mentions.
    const roomRe = new RegExp(`\\b(${LOCATIONS.join("|")})\\b`, "g");
    const lastRoom = test.filter((p) =>
      [...p.context.join(" ").matchAll(roomRe)].at(-1)?.[1] === p.answer
    ).length / test.length;
    // How surprising the count would be for a constant answer's rate: one-sided binomial
    // P(X ≥ correct) with X ~ Bin(n, majorityRate).
    const pValue = binomialTail(test.length, majorityRate, correct);
    const marks = right.map((ok) => (ok ? "1" : "0")).join("");
    const ms = preds.reduce((a, p) => a + p.ms, 0) / preds.length;
    const peak = Math.max(...preds.map((p) => p.peakBytes));
    console.log(
      `QA1-${length} (${format} format): accuracy ${
        accuracy.toFixed(3)
      } (the base before fine-tuning: ` +
        `${(baseCorrect / test.length).toFixed(3)}) vs the best constant answer (${majority}) ` +
        `${majorityRate.toFixed(3)} (one-sided binomial p ${
          pValue.toFixed(3)
        }) and "the last room mentioned" ${lastRoom.toFixed(3)}; ${r.stepsDone} steps in ${
          trainSeconds.toFixed(0)
        } s, ` +
        `best validation loss ${r.bestValLoss.toFixed(3)} at step ${r.bestStep}; ` +
        `answers right in ${kinds}; ` +
        `${ms.toFixed(0)} ms and ${(peak / 2 ** 20).toFixed(0)} MiB per problem; ` +
        `e.g. ${JSON.stringify(preds[0].prediction)}`,
    );
    console.log(`right, problem by problem: ${marks}`);
    assert.ok(
      accuracy > majorityRate,
      `accuracy ${accuracy} ≤ the test majority rate ${majorityRate} (always "${majority}")`,
    );
  },
});

/** P(X ≥ k) for X ~ Binomial(n, p), summed in log space (n in the hundreds). */
function binomialTail(n: number, p: number, k: number): number {
  const lnFact = (m: number) => {
    let s = 0;
    for (let i = 2; i <= m; i++) s += Math.log(i);
    return s;
  };
  let sum = 0;
  for (let x = k; x <= n; x++) {
    sum += Math.exp(
      lnFact(n) - lnFact(x) - lnFact(n - x) + x * Math.log(p) + (n - x) * Math.log1p(-p),
    );
  }
  return Math.min(1, sum);
}
