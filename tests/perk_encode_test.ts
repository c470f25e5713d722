/** PERK's problem encoding: target keys and per-step document renumbering. */
import assert from "node:assert/strict";
import { generateProblems } from "../pipeline/data/problems.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";
import { encodeProblem, renumberDocuments } from "../pipeline/perk/encode_problem.ts";

const tok = gpt2Tokenizer();
const [p] = generateProblems({
  dataset: "babilong",
  task: "qa1",
  length: "1k",
  split: "train",
  n: 1,
  seed: 3,
});

Deno.test("encodeProblem: the target key picks support + answer or the answer alone", () => {
  const full = encodeProblem(tok, p);
  const ans = encodeProblem(tok, p, tok.eosId, "answer");
  assert.equal(tok.decode(Array.from(full.target)), ` ${p.target}<|endoftext|>`);
  assert.equal(tok.decode(Array.from(ans.target)), ` ${p.answer}<|endoftext|>`);
  assert.deepEqual(ans.segments, full.segments);
});

Deno.test("renumberDocuments: new numbers, same bodies, prefixes still masked", () => {
  const e = encodeProblem(tok, p);
  const n = e.segments.length;
  assert.ok(n >= 4, `${n} documents`);
  const perm = [...Array(n).keys()].reverse();
  const r = renumberDocuments(tok, e, perm);
  for (let s = 0; s < n; s++) {
    const text = tok.decode(Array.from(r.segments[s]));
    const body = p.context[s].replace(/^Document \d+:/, "");
    assert.equal(text, `Document ${perm[s]}:${body}<|endoftext|>`);
    assert.equal(
      tok.decode(Array.from(r.segments[s].subarray(0, r.prefixLengths[s]))),
      `Document ${perm[s]}:`,
    );
    // Re-encoding the renumbered text gives the same tokens (prefix and body split cleanly).
    assert.deepEqual(Array.from(r.segments[s]), [
      ...tok.encode(`Document ${perm[s]}:${body}`),
      tok.eosId,
    ]);
  }
  assert.deepEqual(r.prompt, e.prompt);
  assert.throws(() => renumberDocuments(tok, e, [0]), /1 numbers for/);
});
