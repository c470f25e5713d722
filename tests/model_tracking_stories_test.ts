/**
 * Tracking stories for pretraining (pipeline/model/tracking_stories.ts): every marked token
 * starts the room that the question's person last moved to (re-simulated from the decoded
 * text), questions skip the one who just moved, windows are seqLen long and fixed by the
 * rng; stories off (storyFraction 0) leave the pretraining batches as they were; the answer
 * weights count each answer-predicting position once.
 */
import assert from "node:assert/strict";
import { seededRng } from "../pipeline/data/rng.ts";
import { LOCATIONS } from "../pipeline/data/babi_world.ts";
import { CompactTokenizer } from "../pipeline/model/compact_vocab.ts";
import { pretrainData, tinyVocab } from "../pipeline/model/gpu_pretrain_data.ts";
import { trackingStory } from "../pipeline/model/tracking_stories.ts";
import { answerWeights, pretrain } from "../pipeline/model/pretrain.ts";
import { testRuntime } from "./testing.ts";

const tok = new CompactTokenizer(tinyVocab());

Deno.test("tracking stories: each marked token begins the asked person's last room", () => {
  let asked = 0, lastMover = 0;
  for (let s = 0; s < 20; s++) {
    const w = trackingStory(seededRng(s), tok, 256);
    assert.equal(w.ids.length, 256);
    assert.equal(w.answers.length, 256);
    assert.deepEqual(trackingStory(seededRng(s), tok, 256), w, "fixed by the rng");
    // Re-simulate the story from its text up to each marked token.
    w.answers.forEach((a, i) => {
      if (!a) return;
      const before = tok.decode([...w.ids.subarray(0, i)]);
      const room = tok.decode([...w.ids.subarray(i, i + 3)]);
      const where = new Map<string, string>();
      let last = "";
      for (
        const m of before.matchAll(
          /(\w+) (?:went|journeyed|travelled|moved|went back) to the (\w+)\./g,
        )
      ) {
        where.set(m[1], m[2]);
        last = m[1];
      }
      const who = /Where is (\w+)\? The most recent location of \1 is <output>$/.exec(before);
      assert.ok(who, `marked token ${i} follows a question: ${JSON.stringify(before.slice(-80))}`);
      const want = where.get(who[1])!;
      assert.ok(LOCATIONS.includes(want as never));
      assert.ok(
        room.startsWith(want),
        `${who[1]} is in the ${want}, marked ${JSON.stringify(room)}`,
      );
      asked++;
      if (who[1] === last && where.size > 1) lastMover++;
    });
  }
  assert.ok(asked > 100, `${asked} questions in 20 windows`);
  assert.equal(
    lastMover,
    0,
    "a question never asks about the one who just moved (when others are placed)",
  );
});

Deno.test("pretrain data: stories take storyFraction of the windows; off, batches are unchanged", () => {
  const base = { seqLen: 64, taskFraction: 0.5, corpus: "sotu", heldOut: 0.05 };
  const off = pretrainData(base), zero = pretrainData({ ...base, storyFraction: 0 });
  assert.deepEqual(zero.batch(4, 3, 8), off.batch(4, 3, 8));
  assert.ok(!off.marked(4, 3, 8).answers.includes(1));
  const on = pretrainData({ ...base, storyFraction: 0.5 }).marked(4, 3, 32);
  let stories = 0;
  for (let r = 0; r < 32; r++) {
    const text = tok.decode([...on.ids.subarray(r * 64, r * 64 + 64)]);
    if (/^(John|Mary|Sandra|Daniel) (went|journeyed|travelled|moved)/.test(text)) stories++;
  }
  assert.ok(stories >= 8 && stories <= 24, `${stories} of 32 windows are stories`);
  assert.throws(() => pretrainData({ ...base, storyFraction: 1.5 }), /storyFraction/);
});

Deno.test("answer weights: w on positions that predict an answer, 0 on each row's last", () => {
  const answers = Uint8Array.from([0, 1, 0, 1, /* row 2 */ 1, 0, 0, 1]);
  assert.equal(answerWeights(answers, 2, 4, 1), undefined);
  assert.equal(answerWeights(new Uint8Array(8), 2, 4, 5), undefined);
  const r = answerWeights(answers, 2, 4, 5)!;
  // Position t predicts token t+1: row 1 → [5, 1, 5, 0]; row 2's first token predicts nothing.
  assert.deepEqual([...r.weights], [5, 1, 5, 0, 1, 1, 5, 0]);
  assert.equal(r.total, 18);
});

Deno.test("pretrain with stories: answer weights change the loss; held-out story accuracy", async () => {
  const rt = await testRuntime();
  const o = {
    profile: "micro" as const,
    steps: 2,
    rows: 2,
    seqLen: 64,
    warmupSteps: 1,
    evalRows: 2,
    storyFraction: 1,
  };
  const plain = await pretrain(rt, { ...o, answerWeight: 1 });
  const weighted = await pretrain(rt, { ...o, answerWeight: 10 });
  // Same batch and init: only the weighting differs, so the first step's loss differs only
  // if the weights reach the loss.
  assert.notEqual(weighted.losses[0], plain.losses[0]);
  for (const r of [plain, weighted]) {
    assert.ok(r.storyAccuracy !== undefined && r.storyAccuracy >= 0 && r.storyAccuracy <= 1);
  }
  const none = await pretrain(rt, { ...o, storyFraction: 0 });
  assert.equal(none.storyAccuracy, undefined);
});
