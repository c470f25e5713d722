/** Sentence splitting, distractor filter, haystack fill to length, insertion, chunking, corpora. */
import assert from "node:assert/strict";
import { mentionsBabiEntity, splitSentences } from "../pipeline/data/sentences.ts";
import { buildHaystackWith, insertFacts } from "../pipeline/data/haystack.ts";
import { chunkPlain, documents, groupSentences } from "../pipeline/data/chunker.ts";
import { loadCorpus } from "../pipeline/data/corpus.ts";
import { windowTokens } from "../pipeline/data/lengths.ts";
import { seededRng } from "../pipeline/data/rng.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";

const tok = gpt2Tokenizer();

Deno.test("splitSentences: ends, abbreviations, initials, quotes", () => {
  assert.deepEqual(
    splitSentences('Mr. Smith went to Washington. He met Dr. Jones!  Was it 1850? "Yes." Ok'),
    ["Mr. Smith went to Washington.", "He met Dr. Jones!", "Was it 1850?", '"Yes."', "Ok"],
  );
  assert.deepEqual(splitSentences("The U.S. Congress met. J. Adams spoke."), [
    "The U.S. Congress met.",
    "J. Adams spoke.",
  ]);
  assert.deepEqual(splitSentences("  \n "), []);
});

Deno.test("distractor filter drops bAbI actors, locations and objects", () => {
  assert.ok(mentionsBabiEntity("President John Adams spoke."));
  assert.ok(mentionsBabiEntity("The Oval Office was busy."));
  assert.ok(mentionsBabiEntity("Gardens bloom."));
  assert.ok(!mentionsBabiEntity("Johnson and Marysville are not actors."));
  assert.ok(!mentionsBabiEntity("The Congress adjourned."));
});

Deno.test("haystack: every window within 1% of target (real encode), no bAbI names", () => {
  for (const label of ["1k", "8k", "32k", "128k"]) {
    const target = windowTokens(label);
    const h = buildHaystackWith(tok, {
      corpus: "sotu",
      tokenizer: "gpt2",
      targetTokens: target,
      seed: 3,
    });
    const real = tok.encode(h.sentences.join(" ")).length;
    assert.ok(Math.abs(real - target) <= 0.01 * target, `${label}: ${real} vs ${target}`);
    assert.ok(Math.abs(h.totalTokens - real) <= 1, `sum of counts ${h.totalTokens} vs ${real}`);
    assert.ok(!h.sentences.some(mentionsBabiEntity));
  }
});

Deno.test("haystack: deterministic per seed, different across seeds", () => {
  const p = { corpus: "sotu", tokenizer: "gpt2", targetTokens: 2048, seed: 9 };
  assert.deepEqual(buildHaystackWith(tok, p), buildHaystackWith(tok, p));
  assert.notDeepEqual(
    buildHaystackWith(tok, p).sentences,
    buildHaystackWith(tok, { ...p, seed: 10 }).sentences,
  );
});

Deno.test("insertFacts: order kept, positions restricted to the requested third", () => {
  const sentences = Array.from({ length: 90 }, (_, i) => `S${i}.`);
  const facts = ["F0.", "F1.", "F2.", "F3."];
  for (const position of ["pre", "mid", "post", "rnd"] as const) {
    for (let seed = 0; seed < 20; seed++) {
      const { items, factItems } = insertFacts(sentences, facts, position, seededRng(seed));
      assert.equal(items.length, 94);
      assert.deepEqual(factItems.map((i) => items[i]), facts);
      assert.deepEqual(items.filter((x) => x.startsWith("S")), sentences);
      const before = factItems.map((i) =>
        items.slice(0, i).filter((x) => x.startsWith("S")).length
      );
      const [lo, hi] = { pre: [0, 30], mid: [30, 60], post: [60, 90], rnd: [0, 90] }[position];
      assert.ok(before.every((b) => b >= lo && b <= hi), `${position}: ${before}`);
    }
  }
});

Deno.test("chunking: ~256-token segments, facts whole at sentence boundaries, thirds", () => {
  const h = buildHaystackWith(tok, {
    corpus: "sotu",
    tokenizer: "gpt2",
    targetTokens: 8192,
    seed: 4,
  });
  const groups = groupSentences(h, 256);
  assert.ok(groups.length >= 28 && groups.length <= 36, `${groups.length} segments for 8K`);
  const facts = [
    "John Event 0: John went to the office.",
    "John Event 1: John moved to the garden.",
  ];
  for (const position of ["pre", "mid", "post"] as const) {
    const c = chunkPlain({ haystack: h, facts, position, segmentTokens: 256, seed: 1 });
    const n = c.segments.length, third = Math.floor((n - 1) / 3);
    facts.forEach((f, k) => {
      const seg = c.segments[c.factSegments[k]];
      assert.ok(seg.startsWith(f) || seg.includes(`. ${f}`) || seg.includes(` ${f}`), seg);
    });
    const ok = {
      pre: (i: number) => i <= third,
      mid: (i: number) => i >= third && i <= n - 1 - third,
      post: (i: number) => i >= n - 1 - third,
    }[position];
    assert.ok(c.factSegments.every(ok), `${position}: ${c.factSegments} of ${n}`);
    // Nothing lost: every sentence and fact appears once.
    assert.equal(c.segments.join(" ").length, [...h.sentences, ...facts].join(" ").length);
  }
  assert.deepEqual(documents(["a", "b"]), ["Document 0: a", "Document 1: b"]);
});

Deno.test("corpora: folder of .txt, .jsonl, and clear errors for missing/empty/bad", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/b.txt`, "Second file text here. It has two sentences.");
    Deno.writeTextFileSync(`${dir}/a.txt`, "First file text here.");
    Deno.writeTextFileSync(`${dir}/skip.md`, "not read");
    assert.deepEqual(loadCorpus(dir), [
      "First file text here.",
      "Second file text here. It has two sentences.",
    ]);
    Deno.writeTextFileSync(
      `${dir}/c.jsonl`,
      '{"text": "One line of prose."}\n\n{"text": "Two."}\n',
    );
    assert.deepEqual(loadCorpus(`${dir}/c.jsonl`), ["One line of prose.", "Two."]);
    Deno.writeTextFileSync(`${dir}/bad.jsonl`, '{"body": "x"}\n');
    assert.throws(() => loadCorpus(`${dir}/bad.jsonl`), /bad\.jsonl:1: needs a string "text"/);
    Deno.mkdirSync(`${dir}/empty`);
    assert.throws(() => loadCorpus(`${dir}/empty`), /has no text/);
    assert.throws(() => loadCorpus(`${dir}/nope`), /does not exist/);
    // A user corpus smaller than the target is cycled (BabiLong repeats its book).
    const h = buildHaystackWith(tok, {
      corpus: dir,
      tokenizer: "gpt2",
      targetTokens: 1000,
      seed: 1,
    });
    assert.ok(Math.abs(h.totalTokens - 1000) <= 10, `${h.totalTokens}`);
    Deno.mkdirSync(`${dir}/babi`);
    Deno.writeTextFileSync(
      `${dir}/babi/x.txt`,
      "John went to the kitchen. Mary was in the garden.",
    );
    assert.throws(
      () =>
        buildHaystackWith(tok, {
          corpus: `${dir}/babi`,
          tokenizer: "gpt2",
          targetTokens: 100,
          seed: 1,
        }),
      /no usable sentences/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("windowTokens: labels ×1024, clear error otherwise", () => {
  assert.equal(windowTokens("128k"), 131072);
  assert.equal(windowTokens("1K"), 1024);
  assert.equal(windowTokens("3000"), 3000);
  assert.throws(() => windowTokens("8kb"), /use one of 1k, 2k/);
});
