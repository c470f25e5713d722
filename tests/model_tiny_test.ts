/** The tiny default model: config, compact GPT-2 vocabulary (lossless), committed files. */
import assert from "node:assert/strict";
import { loadCorpus } from "../pipeline/data/corpus.ts";
import {
  CompactTokenizer,
  CompactVocab,
  EOS_ID,
  UNK_ID,
} from "../pipeline/tokenizer/compact_vocab.ts";
import { parameterCount, parseHfConfig, toHfConfig } from "../pipeline/model/config.ts";
import { forward } from "../pipeline/model/reference.ts";
import { buildCompactVocab, taskText, TINY_VOCAB, tinyConfig } from "../pipeline/base/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";

const dir = new URL("../fixtures/models/tiny", import.meta.url).pathname;
const committed = () => CompactVocab.fromJson(Deno.readTextFileSync(`${dir}/compact_vocab.json`));

Deno.test("tiny: LLaMA-style config of a few million parameters; committed config.json matches", () => {
  const c = tinyConfig();
  assert.equal(c.arch, "llama");
  assert.equal(c.vocab, TINY_VOCAB);
  assert.equal(c.dim, 256);
  assert.equal(c.layers, 4);
  assert.equal(c.heads, 4);
  assert.equal(c.hidden, 688);
  const n = parameterCount(c);
  assert.ok(n > 3e6 && n < 5e6, `${n} parameters`);
  const file = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  assert.deepEqual(file, JSON.parse(JSON.stringify(toHfConfig(c))));
  assert.deepEqual(parseHfConfig(file), c);
});

Deno.test("tiny: compact vocab rebuilds bit-for-bit from the corpus and task text", () => {
  const built = buildCompactVocab();
  assert.equal(
    built.toJson(),
    Deno.readTextFileSync(`${dir}/compact_vocab.json`),
    "fixtures/models/tiny/compact_vocab.json is stale (corpus or task text changed): rebuild with " +
      "deno run --allow-read --allow-write --allow-env pipeline/base/tiny.ts fixtures/models/tiny",
  );
  assert.equal(built.size, TINY_VOCAB);
});

Deno.test("tiny: compact tokenizer is lossless and keeps task text at GPT-2 length", () => {
  const v = committed(), tok = new CompactTokenizer(v), g = gpt2Tokenizer();
  assert.equal(tok.eosId, EOS_ID);
  assert.deepEqual(v.toGpt2([EOS_ID]), [50256]);
  // Task text: every GPT-2 token is in the compact set (one compact id each).
  for (const t of taskText().filter((_, i) => i % 50 === 0)) {
    const ids = g.encode(t);
    assert.deepEqual(tok.encode(t), ids.map((id) => v.compactOf(id)!), t);
  }
  // Prose: rare tokens expand along their BPE merges; decoding gives the text back.
  const prose = loadCorpus("sotu")[232].slice(0, 4000) + " Zxqwv naïve ☃ 😀<|endoftext|>";
  const ids = tok.encode(prose);
  assert.ok(!ids.includes(UNK_ID));
  assert.ok(ids.every((i) => i >= 0 && i < v.size));
  assert.equal(tok.decode(ids), prose);
  assert.ok(ids.length < 1.4 * g.encode(prose).length);
  assert.ok(ids.includes(EOS_ID));
  // Unknown ids (a model may emit id 0) decode visibly instead of failing.
  assert.equal(tok.decode([UNK_ID, ...tok.encode(" hi")]), "<unk> hi");
  assert.throws(() => v.toGpt2([v.size]), /has no GPT-2 token/);
});

Deno.test("tiny: a random tiny model runs through the float64 reference", () => {
  const c = tinyConfig();
  const m = { config: c, weights: initRandomWeights(c, 3) };
  const ids = new CompactTokenizer(committed()).encode("Mary went to the kitchen.");
  const { logits } = forward(m, ids, { logits: "last" });
  assert.equal(logits.length, c.vocab);
  assert.ok(logits.every(Number.isFinite));
});

Deno.test("tiny: no task-text item ends in a bare prompt (the base must not learn prompt → EOS)", () => {
  // Items are separated by EOS in pretraining: an item ending "Answer:" teaches the base to
  // stop where it should answer.
  const bare = taskText().filter((t) => /Answer:\s*$/.test(t));
  assert.deepEqual(bare.slice(0, 3), []);
  assert.ok(taskText().some((t) => /^You have memorized 7 documents\.\n.+\nAnswer: \w+$/.test(t)));
});
