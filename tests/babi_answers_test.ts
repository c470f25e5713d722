/**
 * Answer kinds on bAbI (pipeline/data/babi_answers.ts): each wrong answer read against its
 * story's facts, counted per method, and shown in results.md only where bAbI records exist.
 */
import assert from "node:assert/strict";
import { answerKind } from "../pipeline/data/babi_answers.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { answerKinds } from "../pipeline/experiment/predictions.ts";
import { resultsMarkdown } from "../pipeline/experiment/report.ts";
import { qa1Record } from "./experiment_fixtures.ts";

const QA1 = [
  "Document 0: It rained. Mary Event 1: Mary went back to the kitchen. Nothing else happened.",
  "Document 1: John Event 0: John travelled to the office. Mary Event 0: Mary moved to the garden. " +
  "The hallway was long.",
].join("\n");

Deno.test("answer kinds, QA1: right, the person's other room, another room, none, empty", () => {
  const q = "Where is Mary?";
  assert.equal(answerKind(QA1, q, "kitchen", " kitchen"), "right");
  // the metric's reading: <output> text, normalised
  assert.equal(answerKind(QA1, q, "kitchen", "Mary is in <output>the Kitchen.</output>"), "right");
  assert.equal(answerKind(QA1, q, "kitchen", "garden"), "asked-other"); // Mary's other move
  assert.equal(answerKind(QA1, q, "kitchen", "office"), "story-other"); // John's room
  // named by the prose only, not by a move: outside the story's facts
  assert.equal(answerKind(QA1, q, "kitchen", "hallway"), "outside-story");
  assert.equal(answerKind(QA1, q, "kitchen", "bedroom"), "outside-story");
  assert.equal(answerKind(QA1, q, "kitchen", " \n "), "empty");
  assert.equal(answerKind(QA1, q, "kitchen", "<output></output>"), "empty");
});

Deno.test("answer kinds, QA2/QA3: the rooms of whoever took or dropped the object", () => {
  const ctx = "Sandra Event 0: Sandra got the apple there. Sandra Event 1: Sandra went to the " +
    "bedroom. Daniel Event 0: Daniel journeyed to the office. Sandra Event 2: Sandra " +
    "put down the apple. John Event 0: John went to the garden. John Event 1: John picked up " +
    "the milk there. Sandra Event 3: Sandra went back to the kitchen.";
  const q = "Where is the apple?";
  assert.equal(answerKind(ctx, q, "bedroom", "bedroom"), "right");
  assert.equal(answerKind(ctx, q, "bedroom", "kitchen"), "asked-other"); // Sandra's later move
  assert.equal(answerKind(ctx, q, "bedroom", "garden"), "story-other"); // John carries the milk
  assert.equal(answerKind(ctx, q, "bedroom", "office"), "story-other");
  const q3 = "Where was the apple before the kitchen?";
  assert.equal(answerKind(ctx, q3, "bedroom", "kitchen"), "asked-other");
  // not a bAbI location question: no kind
  assert.equal(answerKind(ctx, "What is the grade of student 3109998?", "72", "72"), undefined);
});

Deno.test("answer kinds: every simulator problem's answer is right, and a room of the one asked", () => {
  for (const task of ["qa1", "qa2", "qa3"] as const) {
    const problems = generateProblems({
      dataset: "babilong",
      task,
      length: "1k",
      split: "test",
      n: 30,
      seed: 3,
      segmentTokens: 256,
    });
    for (const p of problems) {
      const ctx = p.context.join("\n");
      assert.equal(answerKind(ctx, p.question, p.answer, p.answer), "right", p.id);
      assert.equal(answerKind(ctx, p.question, p.answer, p.target), "right", p.id);
      // the true answer is a room the one asked (or a holder of the object) moved to
      assert.equal(answerKind(ctx, p.question, "nowhere", p.answer), "asked-other", p.id);
      // every other room is classified, never "right"
      for (const r of ["bedroom", "kitchen", "garden", "hallway", "bathroom", "office"]) {
        if (r === p.answer) continue;
        assert.notEqual(answerKind(ctx, p.question, p.answer, r), "right");
      }
    }
  }
});

const rec = qa1Record;

Deno.test("answer kinds: counted per method, and a results.md section only on bAbI records", () => {
  const records = [
    rec({ answer_kind: "right" }),
    rec({ id: "p1", answer_kind: "asked-other", correct: 0 }),
    rec({ id: "p2", answer_kind: "asked-other", correct: 0 }),
    rec({ id: "p3", answer_kind: "story-other", correct: 0 }),
    rec({ method: "ft-icr", answer_kind: "empty", correct: 0 }),
    rec({ method: "records-only", task: "recall" }), // no kind: not counted
  ];
  const counts = answerKinds(records);
  assert.deepEqual(counts.map((c) => [c.method, c.n]), [["perk", 4], ["ft-icr", 1]]);
  assert.deepEqual(counts[0].counts, {
    "right": 1,
    "asked-other": 2,
    "story-other": 1,
    "outside-story": 0,
    "empty": 0,
  });
  const md = resultsMarkdown("t", [], [], [], "", records);
  assert.match(md, /## Answers by kind \(bAbI\)/);
  assert.match(
    md,
    /\| perk \| 4 \| 1 \(25\.0%\) \| 2 \(50\.0%\) \| 1 \(25\.0%\) \| 0 \(0\.0%\) \| 0 \(0\.0%\) \|/,
  );
  const none = resultsMarkdown("t", [], [], [], "", [rec({})]);
  assert.doesNotMatch(none, /Answers by kind/);
});
