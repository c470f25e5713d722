/** Scorers: hand-written cases for each rule. */
import assert from "node:assert/strict";
import {
  babilongCorrect,
  extractOutput,
  normalizeAnswer,
  perkExactMatch,
  scoreItem,
  substringExactMatch,
  tokenF1,
} from "../pipeline/data/scorers.ts";
import { scorePlain } from "../pipeline/data/stages.ts";

Deno.test("normalizeAnswer: case, punctuation, articles, spaces", () => {
  assert.equal(normalizeAnswer("  The  Kitchen. "), "kitchen");
  assert.equal(normalizeAnswer("An apple, a pear!"), "apple pear");
  assert.equal(normalizeAnswer("theatre"), "theatre"); // "the" only as a word
  assert.equal(normalizeAnswer("49.3"), "493");
});

Deno.test("extractOutput: tags, lone opening tag, missing tags", () => {
  assert.equal(extractOutput("<support>x</support>\n<output>garden</output>"), "garden");
  assert.equal(extractOutput("<OUTPUT>Garden</OUTPUT> trailing"), "Garden");
  assert.equal(extractOutput("<output>garden"), "garden");
  assert.equal(extractOutput("garden"), "garden");
});

Deno.test("PERK exact match and token F1", () => {
  const target =
    "<support>Mary Event 0: Mary went to the office.</support>\n<output>office</output>";
  assert.ok(perkExactMatch("<support>whatever</support>\n<output>The Office.</output>", target));
  assert.ok(perkExactMatch("office", target)); // missing tags: whole prediction
  assert.ok(!perkExactMatch("<output>kitchen</output>", target));
  assert.ok(!perkExactMatch("<output>office kitchen</output>", target));
  assert.equal(tokenF1("<output>office kitchen</output>", target), 2 / 3);
  assert.equal(tokenF1("<output>the office</output>", target), 1);
  assert.equal(tokenF1("<output>garden</output>", target), 0);
  assert.equal(tokenF1("<output></output>", "<output></output>"), 1);
});

Deno.test("BabiLong scorer: cut at first period, question labels removed, exactly one", () => {
  const q = "Where was the apple before the kitchen?";
  assert.ok(
    babilongCorrect("The most recent location of Mary is office.", "office", "Where is Mary?"),
  );
  assert.ok(babilongCorrect("Before the kitchen the apple was in the garden.", "garden", q));
  assert.ok(!babilongCorrect("Before the kitchen the apple was in the garden.", "kitchen", q));
  assert.ok(!babilongCorrect("Mary is in the garden or the office.", "office", "Where is Mary?"));
  assert.ok(!babilongCorrect("Mary moved. She is in the office.", "office", "Where is Mary?"));
  assert.ok(babilongCorrect("Office <context> garden", "office", "Where is Mary?"));
  assert.ok(!babilongCorrect("Question: where is the office", "office", "Where is Mary?"));
  assert.ok(!babilongCorrect("I don't know", "office", "Where is Mary?"));
});

Deno.test("substring exact match", () => {
  assert.ok(substringExactMatch("It was Barack Obama, in 2009.", ["barack obama"]));
  assert.ok(substringExactMatch("the answer: Paris", ["London", "Paris"]));
  assert.ok(!substringExactMatch("Paris Hilton", ["London"]));
  assert.ok(!substringExactMatch("anything", ["the"])); // an answer that normalises to nothing
});

Deno.test("score stage: means per metric, unknown metric is an error", () => {
  const r = scorePlain({
    metrics: ["perk-em", "token-f1", "babilong", "subem"],
    items: [
      {
        prediction: "<output>office</output>",
        target: "<output>office</output>",
        question: "Where is Mary?",
      },
      {
        prediction: "<output>garden</output>",
        target: "<output>office</output>",
        question: "Where is Mary?",
      },
    ],
  });
  assert.equal(r.n, 2);
  assert.deepEqual(r.mean, { "perk-em": 0.5, "token-f1": 0.5, babilong: 0.5, subem: 0.5 });
  assert.equal(
    scoreItem("subem", { prediction: "in the office", target: "x", answers: ["office"] }),
    1,
  );
  // deno-lint-ignore no-explicit-any
  assert.throws(() => scorePlain({ metrics: ["bleu" as any], items: [] }), /metric "bleu"/);
});
