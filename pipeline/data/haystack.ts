/**
 * Haystacks: distractor sentences from a corpus, filled to a token budget, and BabiLong's
 * insertion of facts between sentences (sorted random gaps, order kept). Lengths are in
 * the tokens of the tokenizer in use; each sentence is counted once, with the leading space
 * it has inside the joined context, so the sum is the context's length (±1 at the start).
 */
import { tokenizerByName } from "../tokenizer/by_name.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { loadCorpus } from "./corpus.ts";
import { DataInputError } from "./errors.ts";
import { type Position, positionRange } from "./lengths.ts";
import { type Rng, seededRng } from "./rng.ts";
import { mentionsBabiEntity, splitSentences } from "./sentences.ts";

/** Input of the `build haystack` stage (JSON-serialisable). */
export interface HaystackParams {
  /** "sotu" (default corpus), a folder of .txt files, or a .jsonl with a "text" field. */
  readonly corpus: string;
  /** "gpt2" (BabiLong's unit), "qwen3", or a model directory with tokenizer.json. */
  readonly tokenizer: string;
  /** Tokens of distractor text to gather. */
  readonly targetTokens: number;
  readonly seed: number;
}

/** Output of the `build haystack` stage: sentences in corpus order with their token counts. */
export interface Haystack {
  readonly sentences: string[];
  readonly tokens: number[];
  readonly totalTokens: number;
}

/** Sentences longer than this are skipped: they would make the fill too coarse. */
const MAX_SENTENCE_TOKENS = 120;

const splitCache = new Map<string, string[]>(); // key: corpus + doc index

/** Forget split corpus documents (benchmarks measure cold builds). */
export function clearSentenceCache(): void {
  splitCache.clear();
}

function docSentences(corpus: string, docs: string[], i: number): string[] {
  const key = `${corpus}\u0000${i}`;
  let s = splitCache.get(key);
  if (!s) {
    s = splitSentences(docs[i]).filter((x) => x.split(" ").length >= 3 && !mentionsBabiEntity(x));
    splitCache.set(key, s);
  }
  return s;
}

/** Token count of `text` as it appears after a space inside the joined context. */
export function spacedTokens(tok: TextTokenizer, text: string): number {
  return tok.countTokens(" " + text);
}

/**
 * Gather corpus sentences in order from a seeded start (wrapping around) until their tokens
 * are within a small tolerance of `targetTokens`; a sentence that would overshoot is skipped
 * so that the fill ends close to the target.
 */
export function buildHaystackWith(tok: TextTokenizer, p: HaystackParams): Haystack {
  if (!(p.targetTokens >= 0)) {
    throw new DataInputError(`haystack: targetTokens must be ≥ 0, got ${p.targetTokens}`);
  }
  const docs = loadCorpus(p.corpus);
  const rng = seededRng(p.seed);
  // Short sentences are ≥ 4 tokens, so a gap of a few tokens may not close; 0.3% (≥ 5
  // tokens) keeps every window well inside the promised 1%.
  const tolerance = Math.max(5, Math.floor(p.targetTokens * 0.003));
  const sentences: string[] = [], tokens: number[] = [];
  let total = 0, doc = rng.int(docs.length), examined = 0, emptyDocs = 0;
  let start = -1; // a random sentence of the first document
  const maxExamined = 20_000 + 2 * p.targetTokens;
  while (p.targetTokens - total > tolerance) {
    const ss = docSentences(p.corpus, docs, doc);
    if (!ss.length && ++emptyDocs > docs.length) {
      throw new DataInputError(
        `corpus "${p.corpus}": no usable sentences (all are too short or name bAbI ` +
          `actors/locations); use a corpus of ordinary prose`,
      );
    }
    if (start < 0) start = rng.int(Math.max(1, ss.length));
    for (let i = start; i < ss.length && p.targetTokens - total > tolerance; i++) {
      if (++examined > maxExamined) {
        if (p.targetTokens - total <= p.targetTokens * 0.01) {
          return { sentences, tokens, totalTokens: total };
        }
        throw new DataInputError(
          `corpus "${p.corpus}": cannot fill ${p.targetTokens} tokens within tolerance`,
        );
      }
      const n = spacedTokens(tok, ss[i]);
      if (n > MAX_SENTENCE_TOKENS || total + n > p.targetTokens) continue;
      sentences.push(ss[i]);
      tokens.push(n);
      total += n;
    }
    start = 0;
    doc = (doc + 1) % docs.length;
  }
  return { sentences, tokens, totalTokens: total };
}

/** `build haystack` with the tokenizer named in the params. */
export function buildHaystackPlain(p: HaystackParams): Haystack {
  return buildHaystackWith(tokenizerByName(p.tokenizer), p);
}

/**
 * BabiLong's insertion: each fact gets a random gap between sentences (gaps drawn with
 * replacement, then sorted, so facts keep their order); `position` restricts the gaps to a
 * third of the context. Returns the items in context order.
 */
export function insertFacts(
  sentences: readonly string[],
  facts: readonly string[],
  position: Position,
  rng: Rng,
): { items: string[]; factItems: number[] } {
  const [lo, hi] = positionRange(position, sentences.length);
  const gaps = facts.map(() => lo + rng.int(hi - lo + 1)).sort((a, b) => a - b);
  const items: string[] = [], factItems: number[] = [];
  let f = 0;
  for (let g = 0; g <= sentences.length; g++) {
    while (f < facts.length && gaps[f] === g) {
      factItems.push(items.push(facts[f++]) - 1);
    }
    if (g < sentences.length) items.push(sentences[g]);
  }
  return { items, factItems };
}
