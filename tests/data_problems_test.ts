/** Problems: contents, targets, prompts, lengths, split stability/disjointness, JSONL, CLI. */
import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { generateProblems, inContextPrompt, type Problem } from "../pipeline/data/problems.ts";
import { parseJsonl, readJsonl, toJsonl } from "../pipeline/data/jsonl.ts";
import { runCli } from "../pipeline/data/cli.ts";
import { buildHaystack, buildProblems, chunk, decodeProblemSpec } from "../pipeline/data/stages.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";
import { babilongAnswer } from "../pipeline/data/prompts.ts";
import { babilongCorrect } from "../pipeline/data/scorers.ts";
import { sharedPath } from "./testing.ts";
import { babilongTestProblem } from "./problem_fixtures.ts";

const tok = gpt2Tokenizer();
const strip = (c: string) => c.replace(/^Document \d+: /, "");

Deno.test("babilong perk format: facts in segments, target, prompt, length within 1%", () => {
  const ps = generateProblems({
    dataset: "babilong",
    task: "qa3",
    length: "4k",
    split: "train",
    n: 3,
    seed: 1,
  }, tok);
  for (const p of ps) {
    assert.equal(p.support.length, 3);
    p.support.forEach((f, k) => {
      assert.match(f, /^(John|Mary|Sandra|Daniel) Event \d+: \1 /);
      assert.ok(p.context[p.supportSegments[k]].includes(f), `support ${k} not in its segment`);
    });
    assert.equal(
      p.target,
      `<support>${p.support.join("\n")}</support>\n<output>${p.answer}</output>`,
    );
    assert.equal(
      p.prompt,
      `You have memorized ${p.context.length} documents.\n${p.question}\nAnswer:`,
    );
    p.context.forEach((c, i) => assert.ok(c.startsWith(`Document ${i}: `)));
    const real = p.context.reduce((n, c) => n + tok.countTokens(strip(c)), 0);
    assert.ok(Math.abs(real - 4096) <= 41, `${real} tokens for 4k`);
    assert.ok(Math.abs(p.contextTokens - real) <= p.context.length);
    assert.ok(inContextPrompt(p).includes(`Question: ${p.question}`));
  }
});

Deno.test("babilong format: one text, facts in order, length within 1%; released facts", () => {
  const p = babilongTestProblem("qa1", 5, { format: "babilong", position: "post" });
  assert.equal(p.context.length, 1);
  const real = tok.encode(p.context[0]).length;
  assert.ok(Math.abs(real - 1024) <= 10, `${real}`);
  assert.ok(p.context[0].indexOf(p.support[0]) > p.context[0].length * 0.5, "post third");
  assert.ok(inContextPrompt(p).includes("<context>\n" + p.context[0]));
  const dir = sharedPath("data/babi/en-10k");
  if (!dir) return;
  const released = generateProblems({
    dataset: "babilong",
    task: "qa2",
    length: "1k",
    split: "train",
    n: 2,
    seed: 5,
    babiSource: dir,
  }, tok);
  for (const r of released) assert.equal(r.support.length, 2);
});

Deno.test("splits: problem i is stable under n, and splits/seeds never coincide", () => {
  const spec = { dataset: "babilong", task: "qa1", length: "1k", split: "train", seed: 3 } as const;
  const a = generateProblems({ ...spec, n: 2 }, tok);
  const b = generateProblems({ ...spec, n: 4 }, tok);
  assert.deepEqual(b.slice(0, 2), a);
  const key = (p: Problem) => p.context.join("|") + p.question;
  const keys = new Set<string>();
  for (const split of ["train", "validation", "test"] as const) {
    for (const p of generateProblems({ ...spec, split, n: 4 }, tok)) keys.add(key(p));
  }
  assert.equal(keys.size, 12);
});

Deno.test("long stories are redrawn: QA3 at 1K builds (its stories run past 1K tokens of facts)", async () => {
  for (const split of ["train", "test"] as const) {
    const ps = generateProblems(
      { dataset: "babilong", task: "qa3", length: "1k", split, n: 60, seed: 0 },
      tok,
    );
    for (const p of ps) {
      assert.ok(p.contextTokens <= 1024, `${p.id}: ${p.contextTokens} tokens`);
      assert.equal(p.support.length, 3);
    }
  }
  // Problems whose first draw fits are the ones earlier problem sets had: this set's
  // fingerprint, taken before redrawing existed.
  const kept = generateProblems(
    { dataset: "babilong", task: "qa2", length: "1k", split: "test", n: 6, seed: 3 },
    tok,
  );
  assert.equal(
    kept.map((p) => p.answer).join(","),
    "kitchen,bedroom,bedroom,office,garden,kitchen",
  );
  const h = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(JSON.stringify(kept))),
  );
  assert.equal(
    [...h.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(""),
    "cf9b6db40021cc88",
  );
  // A window nothing fits is still a clear error.
  assert.throws(
    () =>
      generateProblems(
        { dataset: "babilong", task: "qa3", length: "40", split: "train", n: 1, seed: 0 },
        tok,
      ),
    /length 40: none of 64 qa3 stories drawn for problem 0 fits .*use a longer length/,
  );
});

Deno.test("JSONL round trip and clear errors", () => {
  const ps = generateProblems({
    dataset: "student-records",
    task: "aggregate",
    length: "1k",
    split: "test",
    n: 2,
    seed: 1,
  }, tok);
  assert.deepEqual(parseJsonl(toJsonl(ps)), ps);
  assert.throws(() => parseJsonl('{"a":1}\n{oops\n', "x.jsonl"), /x\.jsonl:2: not valid JSON/);
  assert.throws(() => readJsonl("/nonexistent.jsonl"), /cannot read/);
});

Deno.test("stages: Effect outputs and typed DataError with the field named", async () => {
  const h = await Effect.runPromise(
    buildHaystack({ corpus: "sotu", tokenizer: "gpt2", targetTokens: 600, seed: 1 }),
  );
  assert.ok(Math.abs(h.totalTokens - 600) <= 6);
  const c = await Effect.runPromise(
    chunk({ haystack: h, facts: ["X."], position: "rnd", segmentTokens: 256, seed: 1 }),
  );
  assert.equal(c.factSegments.length, 1);
  const bad = await Effect.runPromiseExit(
    buildHaystack({ corpus: "/no/such", tokenizer: "gpt2", targetTokens: 10, seed: 1 }),
  );
  assert.ok(Exit.isFailure(bad));
  assert.match(String(bad.cause), /DataError[\s\S]*does not exist/);
  const badTask = await Effect.runPromiseExit(
    buildProblems({
      dataset: "babilong",
      task: "recall",
      length: "1k",
      split: "test",
      n: 1,
      seed: 1,
    }),
  );
  assert.match(String(Exit.isFailure(badTask) && badTask.cause), /task "recall" for babilong/);
  const badSpec = await Effect.runPromiseExit(
    decodeProblemSpec({
      dataset: "babilong",
      task: "qa1",
      length: "1k",
      split: "dev",
      n: 1,
      seed: 1,
    }),
  );
  assert.match(String(Exit.isFailure(badSpec) && badSpec.cause), /split/);
});

Deno.test("CLI: writes JSONL with the documented fields; usage errors for bad flags", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const out = `${dir}/p.jsonl`;
    // A whole request's flags; `over` changes or adds some.
    const flags = (over: Record<string, string> = {}) =>
      Object.entries({ task: "qa1", length: "1k", split: "train", n: "1", seed: "1", out, ...over })
        .flatMap(([k, v]) => [`--${k}`, v]);
    const msg = await Effect.runPromise(
      runCli([
        "student-records",
        ...flags({ task: "relation", split: "validation", n: "3", seed: "4", position: "mid" }),
      ]),
    );
    assert.match(msg, /wrote 3 problems/);
    const rows = readJsonl<Problem>(out);
    assert.equal(rows.length, 3);
    for (
      const f of [
        "context",
        "question",
        "answer",
        "support",
        "target",
        "task",
        "length",
        "position",
        "seed",
        "split",
      ]
    ) {
      assert.ok(f in rows[0], `field ${f}`);
    }
    const bad: [string[], RegExp][] = [
      [["babilong", "--task", "qa1"], /--length is required/],
      [["babilong", ...flags({ n: "x" })], /--n must be an integer/],
      [flags(), /name one dataset/],
      [["babilong", "--tsk", "qa1"], /Unknown option '--tsk'/],
      [["babilong", ...flags({ length: "9q" })], /length "9q"/],
    ];
    for (const [args, re] of bad) {
      const exit = await Effect.runPromiseExit(runCli([...args]));
      assert.ok(Exit.isFailure(exit), `should fail: ${args.join(" ")}`);
      assert.match(String(exit.cause), re);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("in-context prompt: BabiLong instruction, examples in answer form, context last", () => {
  const p = babilongTestProblem("qa2", 8);
  const prompt = inContextPrompt(p);
  assert.equal(prompt.split("<example>").length - 1, 2);
  assert.match(prompt, /Answer: The \w+ is in \w+\.\n<\/example>/);
  assert.match(prompt, /Always return your answer in the following format: The 'item' is in/);
  assert.ok(prompt.endsWith(`</context>\n\nQuestion: ${p.question}`));
  assert.equal(inContextPrompt(p, 0).split("<example>").length, 1);
  assert.equal(
    babilongAnswer("qa3", "Where was the milk before the office?", "garden"),
    "Before the office the milk was in the garden.",
  );
  assert.ok(
    babilongCorrect(babilongAnswer("qa1", "Where is Mary?", "office"), "office", "Where is Mary?"),
  );
});

Deno.test("formats match the authors' samples (../shared/data/perk-samples)", () => {
  const dir = sharedPath("data/perk-samples");
  if (!dir) return;
  const fact =
    /^(John|Mary|Sandra|Daniel) Event \d+: \1 (went to|journeyed to|travelled to|moved to|went back to|picked up|got|grabbed|took|dropped|discarded|left|put down) the \w+( there)?\.$/;
  for (const t of ["qa1", "qa2", "qa3"] as const) {
    const s = JSON.parse(Deno.readTextFileSync(`${dir}/babilong/${t}.json`));
    for (const f of s.support) assert.match(f, fact);
    const ours = babilongTestProblem(t, 1);
    const shape = (q: string) =>
      q.replace(/John|Mary|Sandra|Daniel/, "A").replace(/\b(apple|football|milk)\b/, "O").replace(
        /\b(bedroom|kitchen|garden|hallway|bathroom|office)\b/,
        "L",
      );
    assert.equal(shape(ours.question), shape(s.question));
    for (const f of ours.support) assert.match(f, fact);
  }
  // Student Records question templates: each sample question, ids replaced, is one of ours.
  const ours = new Set<string>();
  for (const task of ["recall", "relation", "aggregate"] as const) {
    for (
      const p of generateProblems({
        dataset: "student-records",
        task,
        length: "1k",
        split: "train",
        n: 30,
        seed: 1,
      }, tok)
    ) {
      ours.add(p.question.replace(/\d{7}/g, "ID"));
    }
  }
  for (const f of ["recall", "relation", "allgregation"]) {
    const s = JSON.parse(Deno.readTextFileSync(`${dir}/student_records/${f}.json`));
    for (const q of s.questions) {
      if (typeof q !== "object") continue;
      assert.ok(ours.has(q.question.replace(/\d{7}/g, "ID")), `template of "${q.question}"`);
    }
  }
});

Deno.test("CLI score: means of each metric; clear error for malformed lines", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const f = `${dir}/pred.jsonl`;
    Deno.writeTextFileSync(
      f,
      '{"prediction": "<output>office</output>", "target": "<output>office</output>"}\n' +
        '{"prediction": "<output>garden</output>", "target": "<output>office</output>"}\n',
    );
    const out = await Effect.runPromise(
      runCli(["score", "--in", f, "--metrics", "perk-em,token-f1"]),
    );
    assert.deepEqual(JSON.parse(out), { n: 2, "perk-em": 0.5, "token-f1": 0.5 });
    Deno.writeTextFileSync(f, '{"pred": "x"}\n');
    const bad = await Effect.runPromiseExit(runCli(["score", "--in", f]));
    assert.match(
      String(Exit.isFailure(bad) && bad.cause),
      /pred\.jsonl:1: needs string "prediction"/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
