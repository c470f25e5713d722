/**
 * Data for the PyTorch PERK prototype (bench/torch_perk.py), in the tiny compact vocabulary:
 * QA problems of the data layer (perk format: segments with their "Document i:" prefix
 * lengths, prompt, answer-only and support+answer targets) and the tiny base's pretraining
 * windows (pipeline/base/pretrain_data.ts: task text, tracking stories, prose).
 *
 *   deno run -A bench/torch_perk_export.ts [OUT=.torch_perk] [LENGTH=256] [TASK=qa1]
 *     [N_TRAIN=2000] [PRETRAIN_STEPS=3000] [CONTEXT=full|facts|support|last]
 * writes OUT/qa_{TASK}_{LENGTH}.json (with CONTEXT ≠ full: qa_{TASK}_{LENGTH}_{CONTEXT}.json) and
 * OUT/pretrain.i32 (PRETRAIN_STEPS × 8 windows × 256). CONTEXT is a diagnostic: `facts` keeps
 * only the story's "X Event k: …" sentences (no prose), `support` only the supporting facts, `last`
 * each actor's last fact only (its highest k: recency removed, so only the person–fact link is
 * tested; bench/torch_perk_diag.py), as one "Document 0:" segment — what the inner loop could read
 * if it ignored the prose.
 */
import { generateProblems, type Problem } from "../pipeline/data/problems.ts";
import type { BabiTask } from "../pipeline/data/babi_world.ts";
import { CompactTokenizer, EOS_ID } from "../pipeline/tokenizer/compact_vocab.ts";
import { pretrainData, tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { encodeProblem } from "../pipeline/perk/encode_problem.ts";

const [
  outDir = ".torch_perk",
  len = "256",
  task = "qa1",
  nTrain = "2000",
  steps = "3000",
  context = "full",
] = Deno.args;
if (!["full", "facts", "support", "last"].includes(context)) {
  throw new Error(`CONTEXT must be full, facts, support or last, got "${context}"`);
}
const FACT = /\S+ Event \d+: [^.!?]*[.!?]/g;
/** Each actor's fact with the highest event number, in the order the story gives them. */
function lastPerActor(facts: readonly string[]): string[] {
  const best = new Map<string, { k: number; i: number }>();
  facts.forEach((f, i) => {
    const [, actor, k] = /^(\S+) Event (\d+):/.exec(f)!;
    if ((best.get(actor)?.k ?? -1) < Number(k)) best.set(actor, { k: Number(k), i });
  });
  const keep = new Set([...best.values()].map((b) => b.i));
  return facts.filter((_, i) => keep.has(i));
}

/** The problem as the diagnostic context shows it (see the header). */
function reduced(p: Problem): Problem {
  if (context === "full") return p;
  const facts = p.context.join(" ").match(FACT) ?? [];
  const kept = context === "facts"
    ? facts
    : context === "last"
    ? lastPerActor(facts)
    : facts.filter((f) => p.support.includes(f)); // perk-format support carries the prefix
  return { ...p, context: [`Document 0: ${kept.join(" ")}`] };
}
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
  out[split] = ps.map((p0) => {
    const p = reduced(p0);
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
const suffix = context === "full" ? "" : `_${context}`;
Deno.writeTextFileSync(`${outDir}/qa_${task}_${len}${suffix}.json`, JSON.stringify(out));
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
console.log(
  `wrote ${outDir}/qa_${task}_${len}${suffix}.json${n > 0 ? ` and ${outDir}/pretrain.i32` : ""}`,
);
