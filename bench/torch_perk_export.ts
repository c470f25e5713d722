/**
 * Data for the PyTorch PERK prototype (bench/torch_perk.py), in the tiny compact vocabulary:
 * QA problems of the data layer (perk format: segments with their "Document i:" prefix
 * lengths, prompt, answer-only and support+answer targets) and the tiny base's pretraining
 * windows (pipeline/base/pretrain_data.ts: task text, tracking stories, prose).
 *
 *   deno run -A bench/torch_perk_export.ts [OUT=.torch_perk] [LENGTH=256] [TASK=qa1]
 *     [N_TRAIN=2000] [PRETRAIN_STEPS=3000]
 * writes OUT/qa_{TASK}_{LENGTH}.json and OUT/pretrain.i32 (PRETRAIN_STEPS × 8 windows × 256).
 */
import { generateProblems } from "../pipeline/data/problems.ts";
import type { BabiTask } from "../pipeline/data/babi_world.ts";
import { CompactTokenizer, EOS_ID } from "../pipeline/tokenizer/compact_vocab.ts";
import { pretrainData, tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { encodeProblem } from "../pipeline/perk/encode_problem.ts";

const [outDir = ".torch_perk", len = "256", task = "qa1", nTrain = "2000", steps = "3000"] =
  Deno.args;
const tok = new CompactTokenizer(tinyVocab());
Deno.mkdirSync(outDir, { recursive: true });
const out: Record<string, unknown> = { vocab: tinyVocab().size, eos: EOS_ID };
// Each id's text, so the prototype can score generated "<output>…</output>" answers.
out.tokens = Array.from({ length: tinyVocab().size }, (_, i) => tok.decode([i]));
const sizes = { train: Number(nTrain), validation: 100, test: 200 };
for (const split of ["train", "validation", "test"] as const) {
  const ps = generateProblems({
    dataset: "babilong",
    task: task as BabiTask,
    length: len,
    split,
    n: sizes[split],
    seed: 0,
    format: "perk",
  });
  out[split] = ps.map((p) => {
    const e = encodeProblem(tok, p);
    return {
      id: p.id,
      answer: p.answer,
      question: p.question,
      segments: e.segments.map((s) => Array.from(s)),
      prefix: e.prefixLengths,
      prompt: Array.from(e.prompt),
      target_support: Array.from(e.target),
      target_answer: [...tok.encode(" " + p.answer), EOS_ID],
    };
  });
}
Deno.writeTextFileSync(`${outDir}/qa_${task}_${len}.json`, JSON.stringify(out));
// Pretraining windows as the tiny base's pretraining draws them, with tracking stories
// ("anyone" asked) in half of them.
const n = Number(steps);
if (n > 0) {
  const d = pretrainData({
    seqLen: 256,
    taskFraction: 0.5,
    corpus: "sotu",
    heldOut: 0.05,
    storyFraction: 0.5,
    storyAsk: "anyone",
  });
  const buf = new Int32Array(n * 8 * 256);
  for (let s = 0; s < n; s++) buf.set(d.batch(0, s, 8), s * 8 * 256);
  Deno.writeFileSync(`${outDir}/pretrain.i32`, new Uint8Array(buf.buffer));
}
console.log(`wrote ${outDir}/qa_${task}_${len}.json${n > 0 ? ` and ${outDir}/pretrain.i32` : ""}`);
