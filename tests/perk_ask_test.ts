/**
 * `ask` and `export` end to end on a micro model: a run's meta-training is found from its
 * folder (stages.json + cache); reading a test problem's context with `Reader` answers exactly
 * what the run's perk-answer stage predicted; the export round-trips the meta-parameters and
 * θ₀ loads as a PEFT adapter; the adapted LoRA is written as one; documents are cut into
 * "Document i:" segments; bad input gets clear errors.
 */
import assert from "node:assert/strict";
import { DEFAULTS } from "../experiments/defaults.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { readStages } from "../pipeline/experiment/run_dir.ts";
import { generateProblems, type ProblemSpec } from "../pipeline/data/problems.ts";
import { importPeft } from "../pipeline/model/peft.ts";
import { documentSegments, Reader } from "../pipeline/perk/ask.ts";
import { loadMeta, metaFromExport, writeExport } from "../pipeline/perk/meta_source.ts";
import { main as askMain, parseAskArgs } from "../pipeline/perk/ask_cli.ts";
import { main as exportMain } from "../pipeline/perk/export_cli.ts";
import { loraFor } from "../pipeline/perk/stages.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { microModel, readJsonl, runConfig } from "./session_harness.ts";
import { testRuntime } from "./testing.ts";

Deno.test("ask: a run's PERK reads a context and answers as its perk-answer stage did; export round-trips", async () => {
  const dir = await Deno.makeTempDir();
  const result = await runConfig(dir, "ask-test", {
    ...DEFAULTS.cpu,
    model: microModel(dir),
    methods: ["perk"],
    train_lengths: ["256"],
    test_lengths: ["256"],
    n_train: 2,
    n_validation: 1,
    n_test: 2,
    steps: 2,
    rank: 2,
    max_new_tokens: 4,
    // The weighting model learned, on the base's hidden states: ask and export must carry both.
    outer_lr_weighting: 1e-2,
    weighting_input: "base",
  });
  const cache = new StageCache(`${dir}/cache`);
  const meta = await loadMeta(result.runDir, cache);
  assert.equal(meta.params.steps, 2);
  assert.equal(meta.state.weightsFrom, "base");
  assert.equal(meta.segmentTokens, 256);
  assert.match(meta.origin, /qa1 @ 256 \(rank 2, N 2/);

  // The run's test problems, rebuilt from their stage's parameters.
  const nodes = readStages(result.runDir);
  const spec = nodes.find((n) =>
    n.stage === "build-problems" && (n.params as ProblemSpec).split === "test"
  )!.params as ProblemSpec;
  const problems = generateProblems(spec);
  const preds = readJsonl(`${result.runDir}/predictions.jsonl`);
  const rt = await testRuntime();
  const reader = new Reader(rt, meta);
  try {
    for (const p of problems) {
      const e = await reader.encodeDocuments(p.context);
      assert.equal(e.documents, p.context.length);
      const a = await reader.answer(p.question);
      const pred = preds.find((r) => r.id === p.id && r.method === "perk");
      assert.equal(a.text, pred.prediction.trim(), `problem ${p.id}`);
    }
    // The adapted LoRA as a PEFT adapter: it loads, and the inner loop moved it off θ₀.
    await reader.saveAdapter(`${dir}/adapted`);
    const adapted = importPeft(`${dir}/adapted`, reader.base.config);
    const lora = loraFor(reader.base, { ...meta.params, dropout: 0 });
    const b0 = lora.specs.findIndex((s) => s.kind === "B");
    const moved = adapted.data.subarray(lora.specs[b0].offset, lora.specs[b0].offset + 8);
    assert.ok(
      moved.some((x, i) => Math.abs(x - meta.state.theta0[b0][i]) > 1e-7),
      "the adapted B differs from θ₀'s",
    );
  } finally {
    reader.dispose();
  }

  // export: θ₀ as PEFT plus the rates and weighting model; ask --meta reads it back exactly.
  writeExport(`${dir}/export`, meta, reader.base);
  const back = metaFromExport(`${dir}/export`);
  assert.deepEqual(back.params, meta.params);
  assert.deepEqual(back.state.lr, meta.state.lr);
  assert.deepEqual(back.state.phi, meta.state.phi);
  assert.equal(back.state.weightsFrom, "base");
  assert.deepEqual(back.state.theta0, meta.state.theta0);
  const peft = importPeft(`${dir}/export`, reader.base.config);
  const lora = loraFor(reader.base, { ...meta.params, dropout: 0 });
  lora.specs.forEach((s, k) =>
    assert.deepEqual(peft.data.subarray(s.offset, s.offset + s.size), meta.state.theta0[k])
  );

  // The commands: export, then ask on a document with questions.
  assert.equal(
    await exportMain([result.runDir, "--peft", `${dir}/e2`, "--cache", `${dir}/cache`]),
    0,
  );
  await Deno.writeTextFile(`${dir}/doc.txt`, problems[0].context.join("\n\n"));
  assert.equal(
    await askMain([
      "--meta",
      `${dir}/e2`,
      "--context",
      `${dir}/doc.txt`,
      "--question",
      problems[0].question,
      "--save-adapter",
      `${dir}/a2`,
    ]),
    0,
  );
  importPeft(`${dir}/a2`, reader.base.config);
  // Errors name what is wrong.
  assert.equal(await askMain(["--meta", dir, "--context", `${dir}/doc.txt`]), 1);
  assert.equal(await askMain(["--meta", `${dir}/e2`, "--context", `${dir}/none.txt`]), 1);
  assert.equal(await askMain(["--context", "x"]), 2);
  assert.equal(
    await exportMain([result.runDir, "--peft", `${dir}/e3`, "--cache", `${dir}/other`]),
    1,
  );
  await assert.rejects(() => loadMeta(dir, cache), /neither a run folder .* nor an export/);
  await assert.rejects(
    () => loadMeta(result.runDir, new StageCache(`${dir}/empty`)),
    /is not in the cache at .*empty; rerun the experiment/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ask: documents are cut at sentences into 'Document i:' segments of about N tokens", () => {
  const tok = new CompactTokenizer(tinyVocab());
  const text = Array.from({ length: 40 }, (_, i) => `Mary went to the kitchen number ${i}.`)
    .join(" ") + "\n\nA line without a full stop\nand another";
  const segs = documentSegments(tok, text, 64);
  assert.ok(segs.length > 3);
  segs.forEach((s, i) => assert.ok(s.startsWith(`Document ${i}: `), s));
  for (const s of segs.slice(0, -1)) {
    const n = tok.encode(s.replace(/^Document \d+: /, "")).length;
    assert.ok(n <= 64 * 1.5, `segment of ${n} tokens`);
  }
  assert.ok(segs.at(-1)!.endsWith("and another"));
  // A sentence longer than a segment is cut at words.
  const long = documentSegments(tok, Array(200).fill("word").join(" "), 32);
  assert.ok(long.length >= 5);
  assert.throws(() => documentSegments(tok, "  \n ", 64), /the document is empty/);
  assert.deepEqual(
    parseAskArgs(["--meta", "m", "--context", "-", "--question", "a", "--question", "b"]),
    {
      meta: "m",
      context: "-",
      questions: ["a", "b"],
      model: undefined,
      cell: undefined,
      cache: undefined,
      saveAdapter: undefined,
      maxTokens: undefined,
    },
  );
  assert.throws(
    () => parseAskArgs(["--meta", "m", "--context", "c", "--cell", "x"]),
    /--cell must be/,
  );
});
