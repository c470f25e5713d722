/**
 * Tracking stories for pretraining (pipeline/base/tracking_stories.ts): every marked token
 * starts the room that the question's person last moved to (re-simulated from the decoded
 * text), questions skip the one who just moved, windows are seqLen long and fixed by the
 * rng; sparse stories (storyProse) put prose between the facts so that questions reach
 * hundreds of tokens back; stories off (storyFraction 0) leave the pretraining batches as they were; the answer
 * weights count each answer-predicting position once.
 */
import assert from "node:assert/strict";
import { seededRng } from "../pipeline/data/rng.ts";
import { LOCATIONS } from "../pipeline/data/babi_world.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { pretrainData, tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { trackingStory } from "../pipeline/base/tracking_stories.ts";
import { answerWeights, pretrain } from "../pipeline/base/pretrain.ts";
import { testRuntime } from "./testing.ts";

const tok = new CompactTokenizer(tinyVocab());

/**
 * Re-simulates a story window from its decoded text up to each marked token and checks that
 * the token begins the asked person's last room. Returns the questions seen, how many asked
 * about the one who just moved, and each question's distance in tokens back to its
 * person's last fact.
 */
function checkAnswers(w: { ids: Int32Array; answers: Uint8Array }) {
  let asked = 0, lastMover = 0;
  const distances: number[] = [];
  w.answers.forEach((a, i) => {
    if (!a) return;
    const before = tok.decode([...w.ids.subarray(0, i)]);
    const room = tok.decode([...w.ids.subarray(i, i + 3)]);
    const where = new Map<string, { room: string; at: number }>();
    let last = "";
    const fact =
      /(John|Mary|Sandra|Daniel) (?:went|journeyed|travelled|moved|went back) to the (\w+)\./g;
    for (const m of before.matchAll(fact)) {
      where.set(m[1], { room: m[2], at: m.index });
      last = m[1];
    }
    const who = /Where is (\w+)\? The most recent location of \1 is <output>$/.exec(before);
    assert.ok(who, `marked token ${i} follows a question: ${JSON.stringify(before.slice(-80))}`);
    const want = where.get(who[1])!;
    assert.ok(LOCATIONS.includes(want.room as never));
    assert.ok(
      // (A window can cut the room after its first token.)
      room.startsWith(want.room) || (i + 3 > w.ids.length && want.room.startsWith(room)),
      `${who[1]} is in the ${want.room}, marked ${JSON.stringify(room)}`,
    );
    asked++;
    if (who[1] === last && where.size > 1) lastMover++;
    distances.push(i - tok.encode(before.slice(0, want.at)).length);
  });
  return { asked, lastMover, distances };
}

Deno.test("tracking stories: each marked token begins the asked person's last room", () => {
  let asked = 0, lastMover = 0;
  for (let s = 0; s < 20; s++) {
    const w = trackingStory(seededRng(s), tok, 256);
    assert.equal(w.ids.length, 256);
    assert.equal(w.answers.length, 256);
    assert.deepEqual(trackingStory(seededRng(s), tok, 256), w, "fixed by the rng");
    const c = checkAnswers(w);
    asked += c.asked;
    lastMover += c.lastMover;
  }
  assert.ok(asked > 100, `${asked} questions in 20 windows`);
  assert.equal(
    lastMover,
    0,
    "a question never asks about the one who just moved (when others are placed)",
  );
});

Deno.test("tracking stories asking anyone: the one who just moved is asked too", () => {
  let asked = 0, lastMover = 0;
  for (let s = 0; s < 20; s++) {
    const c = checkAnswers(trackingStory(seededRng(s), tok, 256, { ask: "anyone" }));
    asked += c.asked;
    lastMover += c.lastMover;
  }
  // Four people: about a quarter of the questions, more early in a story.
  assert.ok(
    lastMover > asked / 8 && lastMover < asked / 2,
    `${lastMover} of ${asked} questions ask about the one who just moved`,
  );
  // Through the pretraining data too (its cache keys on the option).
  const o = { seqLen: 256, taskFraction: 0.5, corpus: "sotu", heldOut: 0.05, storyFraction: 1 };
  const movers = (d: ReturnType<typeof pretrainData>) => {
    const b = d.marked(3, 0, 8);
    return Array.from({ length: 8 }, (_, r) =>
      checkAnswers({
        ids: b.ids.subarray(r * 256, (r + 1) * 256),
        answers: b.answers.subarray(r * 256, (r + 1) * 256),
      }).lastMover).reduce((a, x) => a + x, 0);
  };
  assert.equal(movers(pretrainData(o)), 0);
  assert.ok(movers(pretrainData({ ...o, storyAsk: "anyone" })) > 0);
});

Deno.test("sparse tracking stories: prose between facts, questions reach far back", () => {
  const data = pretrainData({
    seqLen: 1024,
    taskFraction: 0.5,
    corpus: "sotu",
    heldOut: 0.05,
    storyFraction: 1,
    storyProse: 4,
  });
  const b = data.marked(7, 0, 8);
  assert.deepEqual(data.marked(7, 0, 8), b, "fixed by (seed, step)");
  let asked = 0, prose = 0;
  const distances: number[] = [];
  for (let r = 0; r < 8; r++) {
    const w = {
      ids: b.ids.subarray(r * 1024, (r + 1) * 1024),
      answers: b.answers.subarray(r * 1024, (r + 1) * 1024),
    };
    const c = checkAnswers(w);
    assert.equal(c.lastMover, 0);
    asked += c.asked;
    distances.push(...c.distances);
    // Prose: text that is neither a fact nor a question nor an answer.
    const text = tok.decode([...w.ids]);
    const rest = text.replace(/(John|Mary|Sandra|Daniel) [a-z ]+ the \w+\./g, "")
      .replace(/Where is \w+\? The most recent location of \w+ is <output>\w*(<\/output>\.)?/g, "");
    if (rest.trim().length > 200) prose++;
  }
  assert.ok(asked >= 40, `${asked} questions in 8 windows`);
  assert.ok(prose >= 6, `${prose} of 8 windows hold prose between the facts`);
  // Sparse stories reach hundreds of tokens back, as QA1-1K's questions do; dense ones keep
  // most questions within a few dozen tokens of their fact.
  assert.ok(
    Math.max(...distances) > 300,
    `longest fact-to-question distance ${Math.max(...distances)}`,
  );
  const dense = pretrainData({
    seqLen: 1024,
    taskFraction: 0.5,
    corpus: "sotu",
    heldOut: 0.05,
    storyFraction: 1,
  });
  const zero = pretrainData({
    seqLen: 1024,
    taskFraction: 0.5,
    corpus: "sotu",
    heldOut: 0.05,
    storyFraction: 1,
    storyProse: 0,
  });
  assert.deepEqual(zero.marked(7, 0, 2), dense.marked(7, 0, 2), "storyProse 0 is dense");
  const d = dense.marked(7, 0, 8);
  const denseDistances = Array.from({ length: 8 }, (_, r) =>
    checkAnswers({
      ids: d.ids.subarray(r * 1024, (r + 1) * 1024),
      answers: d.answers.subarray(r * 1024, (r + 1) * 1024),
    }).distances).flat();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  assert.ok(
    median(distances) > 2 * median(denseDistances),
    `median distance: sparse ${median(distances)}, dense ${median(denseDistances)}`,
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
  await assert.rejects(() => pretrain(rt, { ...o, storyAsk: "who" as never }), /storyAsk/);
  await assert.rejects(() => pretrain(rt, { ...o, storyProse: -1 }), /storyProse/);
  const none = await pretrain(rt, { ...o, storyFraction: 0 });
  assert.equal(none.storyAccuracy, undefined);
});
