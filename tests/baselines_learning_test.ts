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
 * default base here is pretrained with dense bAbI tracking stories
 * (pipeline/model/tracking_stories.ts: storyFraction 0.75 of the windows, the answered rooms
 * weighted ×10 in the loss, 1,000 steps of 4 × 256 tokens) so that it has some of that skill.
 * FT-ICR then has to apply it inside 1K tokens of prose under BabiLong's instructions.
 *
 * Opt-in (PERK_SLOW_TESTS=1). IT HAS NOT PASSED. Runs on this repository's CPU adapter
 * (lavapipe, 2 cores), defaults unless said: pretraining 1,570 s (653 tok/s), held-out story
 * rooms 35.0% right (120 rooms; chance about 1/5); then, with that base (PERK_TEST_BASE):
 *  - 2026-11-26, PERK's format (facts shuffled into segments, tagged "{Actor} Event {k}:"):
 *    50 min 45 s, fine-tuning 2,587 s, best validation loss 0.104 at step 300; 17.2% vs the
 *    best constant answer's 21.9% ("garden", 64 problems); format and name right in 100% (the
 *    name 21% without stories), the room 17.2%; the base before fine-tuning 0%;
 *  - 2026-11-27, BabiLong's format (the default since): 52 min 3 s, fine-tuning 2,622 s, best
 *    validation loss 0.105 at step 300; again 17.2% vs 21.9%, format and name 100%, while
 *    naming the last room the context mentions would score 46.9%; 3.7 s and 252 MiB per
 *    problem.
 * So the stories taught the copying of the name from the question but no retrieval that
 * survives a haystack. Asked in story form right after QA1 contexts, without fine-tuning,
 * that base names the right room in 21.9% (256 tokens), 21.9% (512) and 25.0% (1K, 32
 * problems) in PERK's format and 21.9% at 1K in BabiLong's. Bases pretrained with sparse
 * stories (prose between the facts, questions hundreds of tokens back; 1 × 1,024 tokens a
 * step) learned nothing: 19.2% of held-out story rooms after 1,200 steps, 18.2% after 700
 * with questions about anyone (pipeline/model/README.md has the table). Earlier
 * measurements, bases pretrained without stories (full fine-tuning, greedy answers on 64
 * test problems, PERK's format):
 *  - micro profile (1 layer, dim 32) pretrained 100 steps, QA1-1K, 300 steps × 8, lr 3e-3:
 *    answer-token loss 0.224, 12.5% vs the training majority's 12.5%; at 128-token contexts:
 *    10.9% vs 12.5%;
 *  - cpu profile (4 layers, dim 128) pretrained 100 steps, 128 tokens, 300 steps × 8,
 *    lr 2e-3: 15.6%, always "kitchen" ("garden" would have scored 21.9%);
 *  - PyTorch on the same examples and recipe (bench/torch_ft_icr.py): the format exact from
 *    step 50, after 150 steps the name right 21% (chance 25%), the room 12.5%.
 * PyTorch on stories alone (4 layers, 4 × 256 tokens a step, answers weighted ×10): with
 * questions about anyone, the one who just moved included, the room accuracy stalls at 50%
 * (the "copy the last room" shortcut); with questions that skip the last mover it goes from
 * chance to 30% by step 300 and 34.5% by step 700 — slow, which is the limit here.
 * Knobs: PERK_TEST_BASE (a model directory; default: pretrain PERK_TEST_PROFILE = cpu for
 * PERK_TEST_BASE_STEPS = 1000 steps with stories), PERK_TEST_LENGTH (1k), PERK_TEST_STEPS
 * (300), PERK_TEST_BATCH (4), PERK_TEST_LR (1e-3), PERK_TEST_N (64 test problems),
 * PERK_TEST_FORMAT (babilong | perk).
 */
import assert from "node:assert/strict";
import { type ContextFormat, generateProblems, type Problem } from "../pipeline/data/problems.ts";
import { babilongCorrect } from "../pipeline/data/scorers.ts";
import { LOCATIONS } from "../pipeline/data/babi_world.ts";
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
      "about an hour on lavapipe)",
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
        steps: Number(env("PERK_TEST_BASE_STEPS", "1000")),
        rows: 4,
        seqLen: 256,
        storyFraction: 0.75,
        answerWeight: 10,
      }, (p) => {
        if (p.step % 100 === 0) console.log(`  pretrain step ${p.step}: loss ${p.loss.toFixed(3)}`);
      });
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
    const test = generateProblems({ ...spec, split: "test", n: Number(env("PERK_TEST_N", "64")) });
    const enc = (ps: Problem[]) => ps.map((p) => encodeIcr(base, tok, p, 0));
    const prompts = promptsOf(base, tok, test, 0);
    const model = GpuModel.upload(rt, base);
    const before = await answerInContext(model, tok, test, prompts, { maxNewTokens: 24 });
    const t = trainable(base, { kind: "full" });
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
    const preds = await answerInContext(tuned, tok, test, prompts, { maxNewTokens: 24 });
    tuned.dispose();
    const rightOf = (xs: { prediction: string }[]) =>
      test.filter((p, i) => babilongCorrect(xs[i].prediction, p.answer, p.question)).length;
    const correct = rightOf(preds), baseCorrect = rightOf(before);
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
    const ms = preds.reduce((a, p) => a + p.ms, 0) / preds.length;
    const peak = Math.max(...preds.map((p) => p.peakBytes));
    console.log(
      `QA1-${length} (${format} format): accuracy ${
        accuracy.toFixed(3)
      } (the base before fine-tuning: ` +
        `${(baseCorrect / test.length).toFixed(3)}) vs the best constant answer (${majority}) ` +
        `${majorityRate.toFixed(3)} and "the last room mentioned" ${
          lastRoom.toFixed(3)
        }; ${r.stepsDone} steps in ${trainSeconds.toFixed(0)} s, ` +
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
