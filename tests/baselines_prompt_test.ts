/**
 * Baselines without the GPU: the in-context prompt (every fact of the context exactly once,
 * the context whole and in order, the question after it, "Answer:" last), the answer text
 * scoring under every metric, and position extension (interpolation, RoPE scaling, errors).
 */
import assert from "node:assert/strict";
import { generateProblems } from "../pipeline/data/problems.ts";
import { scoreItem } from "../pipeline/data/scorers.ts";
import { METRICS } from "../pipeline/data/scorers.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";
import { icrAnswerText, icrPromptText } from "../pipeline/baselines/in_context.ts";
import {
  extendPositions,
  interpolatePositions,
  parseRopeChoice,
} from "../pipeline/baselines/positions.ts";
import { tinyConfig } from "../pipeline/base/tiny.ts";
import type { ModelConfig } from "../pipeline/model/config.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { babilongTestProblem } from "./problem_fixtures.ts";

const tok = gpt2Tokenizer();
const count = (hay: string, needle: string) => hay.split(needle).length - 1;
const FACT = /(?:John|Mary|Sandra|Daniel) Event \d+: [^.]*\./g;

Deno.test("in-context prompt: every fact of the context exactly once, context whole, question last", () => {
  for (const task of ["qa1", "qa2", "qa3"] as const) {
    const ps = generateProblems(
      { dataset: "babilong", task, length: "1k", split: "test", n: 3, seed: 3 },
      tok,
    );
    for (const p of ps) {
      const facts = p.context.flatMap((c) => c.match(FACT) ?? []);
      assert.ok(facts.length >= p.support.length && facts.length > 0, `${p.id}: no facts found`);
      for (const examples of [0, 2, 4]) {
        const prompt = icrPromptText(p, examples);
        for (const f of facts) assert.equal(count(prompt, f), 1, `${p.id}: fact "${f}"`);
        for (const s of p.support) assert.equal(count(prompt, s), 1, `${p.id}: support "${s}"`);
        assert.equal((prompt.match(FACT) ?? []).length, facts.length, "no other event facts");
        // Segments in order, without their "Document i:" prefixes, each exactly once.
        let at = prompt.indexOf("<context>\n");
        for (const seg of p.context) {
          const text = seg.replace(/^Document \d+: /, "");
          assert.equal(count(prompt, text), 1);
          const i = prompt.indexOf(text);
          assert.ok(i > at, `${p.id}: segments out of order`);
          at = i;
        }
        assert.doesNotMatch(prompt, /Document \d+:/);
        assert.ok(prompt.lastIndexOf(`Question: ${p.question}`) > prompt.indexOf("</context>"));
        assert.ok(prompt.endsWith("\nAnswer:"));
        assert.equal(count(prompt, "<example>"), examples);
      }
    }
  }
});

Deno.test("in-context prompt: BabiLong-format context (one text) appears exactly once", () => {
  const p = babilongTestProblem("qa2", 4, { format: "babilong" });
  const prompt = icrPromptText(p, 4);
  assert.equal(count(prompt, p.context[0]), 1);
  const ctx = prompt.slice(prompt.indexOf("<context>"), prompt.indexOf("</context>"));
  for (const s of p.support) assert.equal(count(ctx, s), 1, `support "${s}"`);
});

Deno.test("FT-ICR answers score under every metric; a wrong location scores 0", () => {
  const ps = [
    ...generateProblems(
      { dataset: "babilong", task: "qa1", length: "1k", split: "test", n: 2, seed: 1 },
      tok,
    ),
    ...generateProblems(
      { dataset: "babilong", task: "qa3", length: "1k", split: "test", n: 2, seed: 1 },
      tok,
    ),
  ];
  for (const p of ps) {
    const text = icrAnswerText(p);
    assert.ok(text.includes(`<output>${p.answer}</output>`), text);
    const wrongLoc = ["kitchen", "garden"].find((l) => l !== p.answer)!;
    const wrong = text.replace(`<output>${p.answer}<`, `<output>${wrongLoc}<`);
    for (const metric of METRICS) {
      const item = { target: p.target, question: p.question };
      assert.equal(scoreItem(metric, { ...item, prediction: text }), 1, `${metric}: ${text}`);
      if (metric !== "token-f1") {
        assert.equal(scoreItem(metric, { ...item, prediction: wrong }), 0, `${metric}: ${wrong}`);
      }
    }
  }
  const [r] = generateProblems(
    { dataset: "student-records", task: "recall", length: "1k", split: "test", n: 1, seed: 1 },
    tok,
  );
  assert.equal(icrAnswerText(r), ` <output>${r.answer}</output>`);
  assert.ok(icrPromptText(r, 0).endsWith("Answer:"));
  assert.equal(scoreItem("perk-em", { prediction: icrAnswerText(r), target: r.target }), 1);
});

Deno.test("positions: learned tables are interpolated; RoPE scaled by the config; else a clear error", () => {
  // (P=3, C=2) → 5 rows: endpoints kept, midpoints averaged.
  const t = Float32Array.from([0, 10, 2, 30, 4, 50]);
  assert.deepEqual(
    [...interpolatePositions(t, 3, 2, 5)],
    [0, 10, 1, 20, 2, 30, 3, 40, 4, 50],
  );
  const gpt2: ModelConfig = {
    ...tinyConfig(64),
    arch: "gpt2",
    positions: "learned",
    norm: "layernorm",
    act: "gelu_tanh",
    dim: 8,
    heads: 2,
    kvHeads: 2,
    headDim: 4,
    hidden: 16,
    layers: 1,
    maxPositions: 32,
    qkvBias: true,
    oBias: true,
    mlpBias: true,
  };
  const m = { config: gpt2, weights: initRandomWeights(gpt2, 1) };
  assert.equal(extendPositions(m, 32, { type: "none" }, "t").model, m);
  const e = extendPositions(m, 100, { type: "none" }, "t");
  assert.equal(e.model.config.maxPositions, 128);
  assert.deepEqual(e.model.weights.get("pos")!.shape, [128, 8]);
  const old = m.weights.get("pos")!.data, neu = e.model.weights.get("pos")!.data;
  assert.deepEqual([...neu.slice(0, 8)], [...old.slice(0, 8)]);
  assert.deepEqual([...neu.slice(127 * 8)], [...old.slice(31 * 8)]);
  assert.match(e.note!, /interpolated from 32 to 128/);

  const rope = { config: { ...tinyConfig(64), maxPositions: 1000 }, weights: new Map() };
  assert.throws(
    () => extendPositions(rope, 3000, { type: "none" }, "ft-icr-eval"),
    /ft-icr-eval: sequences of 3000 tokens are longer than the model's 1000 positions; set rope_scaling to "linear:F" or "yarn:F" with F ≥ 3/,
  );
  assert.throws(
    () => extendPositions(rope, 3000, { type: "linear", factor: 2 }, "x"),
    /covers 2000 positions but sequences reach 3000; use a factor ≥ 3/,
  );
  const lin = extendPositions(rope, 3000, { type: "linear", factor: 4 }, "x").model.config;
  assert.deepEqual(lin.ropeScaling, { type: "linear", factor: 4 });
  assert.equal(lin.maxPositions, 4000);
  const yarn = extendPositions(rope, 3000, parseRopeChoice("yarn:4"), "x").model.config;
  assert.equal(yarn.ropeScaling.type, "yarn");
  assert.ok(yarn.ropeScaling.type === "yarn" && yarn.ropeScaling.originalMaxPositions === 1000);
  assert.throws(() => parseRopeChoice("linear"), /use "none", "linear:F" or "yarn:F"/);
  assert.throws(() => parseRopeChoice("yarn:1"), /factor F > 1/);
});
