/**
 * The tiny default base model: a LLaMA-style decoder of ≈ 4.7M parameters over a compact GPT-2
 * vocabulary built from the data module's corpus (SOTU) and generated task text, so a fresh
 * clone can run PERK on the CPU without downloads. Pretraining is a separate stage (GPU core).
 *
 * Regenerate fixtures/models/tiny/{config.json,compact_vocab.json} bit-for-bit:
 *   deno run --allow-read --allow-write --allow-env pipeline/base/tiny.ts fixtures/models/tiny
 */
import { generateBabiSamples } from "../data/babi_world.ts";
import { BABI_TASKS, eventPrefixedFacts } from "../data/babi_world.ts";
import { documentPrefix } from "../data/chunker.ts";
import { DEFAULT_CORPUS, loadCorpus } from "../data/corpus.ts";
import {
  babilongAnswer,
  babilongPrompt,
  perkPrompt,
  recordsPrompt,
  supportTarget,
} from "../data/prompts.ts";
import { seededRng } from "../data/rng.ts";
import {
  formatRecord,
  randomRecord,
  RECORD_TASKS,
  recordQuestion,
  SPLITS,
  type StudentRecord,
} from "../data/student_records.ts";
import { Gpt2Tokenizer } from "../tokenizer/gpt2.ts";
import { writeFileAtomic } from "../model/atomic.ts";
import { CompactVocab, gpt2Files } from "../tokenizer/compact_vocab.ts";
import { LLAMA_BLOCK, type ModelConfig, toHfConfig, validateConfig } from "../model/config.ts";
import { EOS_ID } from "../tokenizer/compact_vocab.ts";

/** Compact vocabulary size of the default tiny model (a multiple of 64 for GPU tiles). */
export const TINY_VOCAB = 6144;

/** The tiny default config for a compact vocabulary of `vocab` entries. */
export function tinyConfig(vocab = TINY_VOCAB): ModelConfig {
  const dim = 256;
  const c: ModelConfig = {
    arch: "llama",
    vocab,
    dim,
    layers: 4,
    heads: 4,
    kvHeads: 4,
    headDim: 64,
    hidden: 688, // ≈ 4·dim·2/3 (LLaMA's SwiGLU width), rounded up to a multiple of 16
    // A limit, not a trained length: pretraining and PERK segments are ~256 tokens.
    maxPositions: 4096,
    ...LLAMA_BLOCK,
    tiedEmbeddings: true,
    bosId: EOS_ID,
    eosIds: [EOS_ID],
  };
  validateConfig(c, "tiny config");
  return c;
}

/**
 * Generated task text (seeded): bAbI facts with and without event prefixes, questions,
 * answers, PERK targets and prompts, BabiLong instructions, Student Records of every split
 * with their questions, and "Document {i}: " prefixes up to 1024 documents.
 *
 * Every prompt that ends "Answer:" is followed by an answer: items are separated by EOS in
 * pretraining, and a bare prompt item taught the base "Answer:" → EOS, so PERK started from
 * a model that answers nothing (it answered ":" or nothing in the 2026-12-06 main job).
 */
export function taskText(): string[] {
  const out: string[] = [];
  for (const task of BABI_TASKS) {
    for (const s of generateBabiSamples(task, 300, 7)) {
      const facts = eventPrefixedFacts(s.facts);
      out.push(s.facts.join(" "), facts.join("\n"), s.question, s.answer);
      out.push(`${s.question}\nAnswer: ${s.answer}`);
      out.push(supportTarget(s.support.map((i) => facts[i]), s.answer));
      out.push(babilongAnswer(task, s.question, s.answer));
    }
    out.push(babilongPrompt(task, "", "Where is John?", 2));
  }
  const rng = seededRng(11);
  for (const split of SPLITS) {
    const used = new Set<string>();
    const records: StudentRecord[] = [];
    for (let i = 0; i < 400; i++) records.push(randomRecord(rng, split, used));
    out.push(...records.map(formatRecord));
    for (const task of RECORD_TASKS) {
      for (let i = 0; i < 40; i++) {
        const q = recordQuestion(task, records, rng);
        // Answered on its own line: " Yes" is no token of the compact vocabulary.
        out.push(q.question, q.answer, `${recordsPrompt("", q.question)}\n${q.answer}`);
      }
    }
  }
  // PERK's question prompts (every document count a context can have), each answered.
  const asked = generateBabiSamples("qa1", 1024, 13);
  for (let i = 0; i < 1024; i++) {
    out.push(documentPrefix(i), `${perkPrompt(i + 1, asked[i].question)} ${asked[i].answer}`);
  }
  return out;
}

/**
 * The compact vocabulary: <unk>, <|endoftext|>, the 256 byte symbols, every GPT-2 token of
 * the task text, then the corpus's most frequent tokens (ties: lower GPT-2 id) up to `size`.
 */
export function buildCompactVocab(
  { size = TINY_VOCAB, corpus = DEFAULT_CORPUS }: { size?: number; corpus?: string } = {},
): CompactVocab {
  const f = gpt2Files();
  const tok = new Gpt2Tokenizer(f.encoder, f.merges);
  const keep = new Set<number>([50256]);
  for (let b = 0; b < 256; b++) keep.add(b);
  for (const t of taskText()) for (const id of tok.encode(t)) keep.add(id);
  if (keep.size + 1 > size) {
    throw new Error(`compact vocab: task text alone needs ${keep.size + 1} entries > size ${size}`);
  }
  const counts = new Map<number, number>();
  for (const doc of loadCorpus(corpus)) {
    for (const id of tok.encode(doc)) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const ranked = [...counts].filter(([id]) => !keep.has(id)).sort((a, b) =>
    b[1] - a[1] || a[0] - b[0]
  );
  for (const [id] of ranked) {
    if (keep.size + 1 >= size) break;
    keep.add(id);
  }
  keep.delete(50256);
  return new CompactVocab([-1, 50256, ...[...keep].sort((a, b) => a - b)]);
}

/** Write config.json and compact_vocab.json of the tiny model into `dir`. */
export function writeTinyFiles(dir: string, vocab = buildCompactVocab()): void {
  Deno.mkdirSync(dir, { recursive: true });
  writeFileAtomic(`${dir}/compact_vocab.json`, vocab.toJson());
  writeFileAtomic(
    `${dir}/config.json`,
    JSON.stringify(toHfConfig(tinyConfig(vocab.size)), null, 2) + "\n",
  );
}

if (import.meta.main) {
  const dir = Deno.args[0] ?? "fixtures/models/tiny";
  writeTinyFiles(dir);
  console.log(`wrote ${dir}/config.json and ${dir}/compact_vocab.json`);
}
