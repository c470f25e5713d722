/** `deno task generate`: argument parsing, model/tokenizer discovery, adapters, streaming. */
import assert from "node:assert/strict";
import { generateText, parseGenerateArgs, UsageError } from "../pipeline/model/generate_cli.ts";
import { saveHfModel } from "../pipeline/model/hf_loader.ts";
import { loadModel, loadTokenizerFor, promptIds } from "../pipeline/model/load.ts";
import { defaultLoraConfig, initLora, toReferenceLora, withData } from "../pipeline/model/lora.ts";
import { exportPeft } from "../pipeline/model/peft.ts";
import { generateGreedy } from "../pipeline/model/reference.ts";
import { tinyConfig } from "../pipeline/base/tiny.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { randn, sharedTest } from "./testing.ts";

Deno.test("generate cli: arguments", () => {
  assert.deepEqual(parseGenerateArgs(["--model", "m", "--prompt", "hi", "--max-tokens", "3"]), {
    model: "m",
    prompt: "hi",
    maxTokens: 3,
    adapter: undefined,
    tokenizer: undefined,
  });
  assert.equal(parseGenerateArgs(["--help"]), "help");
  assert.throws(() => parseGenerateArgs(["--prompt", "x"]), UsageError);
  assert.throws(() => parseGenerateArgs(["--model", "m"]), /--prompt TEXT is required/);
  assert.throws(
    () => parseGenerateArgs(["--model", "m", "--prompt", "", "--max-tokens", "-1"]),
    /--max-tokens/,
  );
  assert.throws(() => parseGenerateArgs(["--model", "m", "--prompt", "", "--bogus"]), UsageError);
  assert.throws(
    () => loadModel("/nonexistent/model"),
    /model \/nonexistent\/model: does not exist/,
  );
});

Deno.test("generate cli: HF directory with a compact vocabulary (tiny config, random weights)", () => {
  const dir = Deno.makeTempDirSync();
  const config = tinyConfig();
  saveHfModel(dir, { config, weights: initRandomWeights(config, 8, { std: 0.1 }) });
  Deno.copyFileSync(
    new URL("../fixtures/models/tiny/compact_vocab.json", import.meta.url),
    `${dir}/compact_vocab.json`,
  );
  const model = loadModel(dir), tok = loadTokenizerFor(dir, model);
  assert.equal(tok.name, "gpt2-compact");
  const ids = promptIds(model, tok, "Mary went to the kitchen.");
  assert.equal(ids[0], tok.encode("Mary")[0]); // no BOS for the compact GPT-2 vocabulary
  const want = generateGreedy(model, ids, { maxNewTokens: 4 });
  const chunks: string[] = [];
  const text = generateText(
    { model: dir, prompt: "Mary went to the kitchen.", maxTokens: 4 },
    (s) => chunks.push(s),
  );
  assert.equal(text, tok.decode([...ids, ...want.tokens]).slice(tok.decode(ids).length));
  assert.equal(chunks.join(""), text);
  Deno.removeSync(dir, { recursive: true });
});

sharedTest(
  "models/stories260K",
  "generate cli: llama2.c .bin with its tokenizer beside it, with and without a PEFT adapter",
  (stories) => {
    const bin = `${stories}/stories260K.bin`;
    const plain = generateText({ model: bin, prompt: "Once upon a time", maxTokens: 20 });
    assert.ok(plain.startsWith(", there was a little girl named Lily."), plain);
    const model = loadModel(bin);
    const dir = Deno.makeTempDirSync();
    const fresh = initLora(model.config, defaultLoraConfig(model.config, { rank: 4, seed: 1 }));
    exportPeft(dir, model.config, fresh);
    // B = 0: the adapter changes nothing.
    assert.equal(
      generateText({ model: bin, prompt: "Once upon a time", maxTokens: 20, adapter: dir }),
      plain,
    );
    const trained = withData(fresh, randn(fresh.data.length, 5, -0.4, 0.4));
    exportPeft(dir, model.config, trained);
    const adapted = generateText({
      model: bin,
      prompt: "Once upon a time",
      maxTokens: 20,
      adapter: dir,
    });
    const tok = loadTokenizerFor(bin, model), ids = promptIds(model, tok, "Once upon a time");
    const want = generateGreedy(model, ids, { maxNewTokens: 20, lora: toReferenceLora(trained) });
    assert.equal(adapted, tok.decode([...ids, ...want.tokens]).slice(tok.decode(ids).length));
    assert.notEqual(adapted, plain);
    Deno.removeSync(dir, { recursive: true });
  },
);

sharedTest(
  "models/gpt2-tiny-random",
  "generate cli: HF GPT-2 directory with tokenizer.json",
  (gpt2) => {
    const model = loadModel(gpt2), tok = loadTokenizerFor(gpt2, model);
    assert.equal(tok.vocabSize, 50257);
    const ids = promptIds(model, tok, "Hello world");
    assert.deepEqual(ids, [15496, 995]);
    const text = generateText({ model: gpt2, prompt: "Hello world", maxTokens: 3 });
    const want = generateGreedy(model, ids, { maxNewTokens: 3 });
    assert.equal(text, tok.decode(want.tokens));
  },
);
