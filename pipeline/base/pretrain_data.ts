/**
 * Token batches for pretraining the tiny base model on the embedded corpus: windows of
 * `seqLen` compact-vocabulary tokens, each from either the generated task text (tiny.ts
 * `taskText()`: bAbI facts, questions, answers, PERK targets and prompts, Student Records)
 * or the SOTU haystack prose, and optionally (storyFraction > 0) dense bAbI tracking stories
 * (tracking_stories.ts) whose answered rooms can be weighted up in the loss. Batches depend
 * only on (seed, step), so a run is reproducible and resumable without any sampler state. A
 * held-out split (the last documents of each source) gives an evaluation batch the training
 * never sees; its stories come from their own random stream.
 */
import { loadCorpus } from "../data/corpus.ts";
import { deriveSeed, type Rng, seededRng } from "../data/rng.ts";
import { CompactTokenizer, CompactVocab, EOS_ID } from "../tokenizer/compact_vocab.ts";
import { ModelError } from "../model/errors.ts";
import { taskText } from "./tiny.ts";
import { type StoryAsk, trackingStory } from "./tracking_stories.ts";

/** The committed compact vocabulary of the tiny model. */
export function tinyVocab(): CompactVocab {
  const url = new URL("../../fixtures/models/tiny/compact_vocab.json", import.meta.url);
  return CompactVocab.fromJson(Deno.readTextFileSync(url), url.pathname);
}

export interface PretrainDataOptions {
  readonly seqLen: number;
  /** Fraction of windows taken from the task text (the rest from the corpus prose). */
  readonly taskFraction: number;
  /** Corpus name for pipeline/data's loadCorpus ("sotu"). */
  readonly corpus: string;
  /** Fraction of each source held out for evaluation. */
  readonly heldOut: number;
  /**
   * Fraction of windows that are tracking stories (default 0: none, and the other windows
   * are exactly those of a run without the option). The rest split by taskFraction.
   */
  readonly storyFraction?: number;
  /**
   * Sparse stories: each story window draws a mean in [storyProse/4, storyProse] and puts
   * about that many prose sentences after each fact (tracking_stories.ts). Absent or 0:
   * dense stories.
   */
  readonly storyProse?: number;
  /** Whom story questions ask about (tracking_stories.ts `StoryAsk`; default "others"). */
  readonly storyAsk?: StoryAsk;
}

/** A batch with, per token, whether it is an answered room of a tracking story. */
export interface MarkedBatch {
  /** (rows·seqLen) token ids. */
  readonly ids: Int32Array;
  /** (rows·seqLen) 1 on answer tokens of story windows, else 0. */
  readonly answers: Uint8Array;
}

interface Split {
  readonly task: Int32Array;
  readonly docs: readonly string[];
  /** Cumulative character counts of docs, for length-proportional sampling. */
  readonly cum: Float64Array;
}

const cached = new Map<string, PretrainData>();
/** One PretrainData per option set (building one encodes the whole task text, ~2 s). */
export function pretrainData(o: PretrainDataOptions): PretrainData {
  const key = JSON.stringify([
    o.seqLen,
    o.taskFraction,
    o.corpus,
    o.heldOut,
    o.storyFraction,
    o.storyProse,
    o.storyAsk,
  ]);
  let d = cached.get(key);
  if (!d) cached.set(key, d = new PretrainData(o));
  return d;
}

export class PretrainData {
  readonly tok: CompactTokenizer;
  readonly #train: Split;
  readonly #eval: Split;

  constructor(readonly o: PretrainDataOptions, vocab = tinyVocab()) {
    if (!(o.taskFraction >= 0 && o.taskFraction <= 1)) {
      throw new ModelError(`pretrain data: taskFraction must be in [0, 1], got ${o.taskFraction}`);
    }
    const sf = o.storyFraction ?? 0;
    if (!(sf >= 0 && sf <= 1)) {
      throw new ModelError(`pretrain data: storyFraction must be in [0, 1], got ${sf}`);
    }
    if (!(o.heldOut > 0 && o.heldOut < 0.5)) {
      throw new ModelError(`pretrain data: heldOut must be in (0, 0.5), got ${o.heldOut}`);
    }
    this.tok = new CompactTokenizer(vocab);
    // Task text in its natural order (a sample's facts, question, answer and support target
    // stay adjacent), items separated by EOS.
    const items = taskText();
    const cutItem = Math.floor(items.length * (1 - o.heldOut));
    const stream = (xs: string[]) => {
      const ids: number[] = [];
      for (const s of xs) ids.push(...this.tok.encode(s), EOS_ID);
      return Int32Array.from(ids);
    };
    const docs = loadCorpus(o.corpus);
    const cutDoc = Math.max(1, Math.floor(docs.length * (1 - o.heldOut)));
    const split = (task: Int32Array, ds: readonly string[]): Split => {
      const cum = new Float64Array(ds.length);
      ds.forEach((d, i) => (cum[i] = (i ? cum[i - 1] : 0) + d.length));
      return { task, docs: ds, cum };
    };
    this.#train = split(stream(items.slice(0, cutItem)), docs.slice(0, cutDoc));
    this.#eval = split(stream(items.slice(cutItem)), docs.slice(cutDoc));
    for (const s of [this.#train, this.#eval]) {
      if (s.task.length < o.seqLen || !s.docs.length) {
        throw new ModelError(`pretrain data: a split is shorter than seqLen ${o.seqLen}`);
      }
    }
  }

  /** (rows·seqLen) token ids for training step `step` (or the fixed evaluation batch). */
  batch(seed: number, step: number | "eval", rows: number): Int32Array {
    return this.marked(seed, step, rows).ids;
  }

  /** The batch of `batch()` with its story answer tokens marked. */
  marked(seed: number, step: number | "eval", rows: number): MarkedBatch {
    const s = step === "eval" ? this.#eval : this.#train;
    const rng = seededRng(deriveSeed(seed, "pretrain-batch", step));
    const T = this.o.seqLen, sf = this.o.storyFraction ?? 0;
    const ids = new Int32Array(rows * T), answers = new Uint8Array(rows * T);
    for (let r = 0; r < rows; r++) {
      // No draw for stories when they are off: the windows stay those of older runs.
      if (sf > 0 && rng.next() < sf) {
        // A window's own density, from a quarter of storyProse to all of it: the denser ones
        // give many answers, the sparser ones the long fact-to-question distances.
        const sp = this.o.storyProse ?? 0;
        const mean = sp > 0 ? sp * (0.25 + 0.75 * rng.next()) : 0;
        const story = trackingStory(
          rng,
          this.tok,
          T,
          {
            ask: this.o.storyAsk,
            prose: mean > 0
              ? { sentences: mean, sentence: (r) => this.#sentence(s, r) }
              : undefined,
          },
        );
        ids.set(story.ids, r * T);
        answers.set(story.answers, r * T);
        continue;
      }
      const row = rng.next() < this.o.taskFraction
        ? s.task.subarray(...window(rng.int(s.task.length - T + 1), T))
        : this.#prose(s, rng);
      ids.set(row, r * T);
    }
    return { ids, answers };
  }

  /** One whole prose sentence of a random document (∝ length), for sparse stories. */
  #sentence(s: Split, rng: Rng): string {
    for (;;) {
      const { doc, start } = randomSpot(s, rng);
      const ends = /[.!?](?:\s+|$)/g;
      ends.lastIndex = start;
      const a = ends.exec(doc);
      if (!a) continue;
      const from = a.index + a[0].length, b = ends.exec(doc);
      if (!b) continue;
      const text = doc.slice(from, b.index + 1).replace(/\s+/g, " ").trim();
      // Skip headings and run-ons: a sentence of a few words to a few lines.
      if (text.length >= 20 && text.length <= 400) return text;
    }
  }

  /** A window of prose: a random document (∝ length), from a sentence start. */
  #prose(s: Split, rng: Rng): Int32Array {
    const T = this.o.seqLen, ids: number[] = [];
    while (ids.length < T) {
      const { doc, start } = randomSpot(s, rng);
      // Begin after the next sentence end so windows start on a word, not mid-token.
      const m = /[.!?]\s+/g;
      m.lastIndex = start;
      const hit = m.exec(doc);
      const from = hit ? hit.index + hit[0].length : 0;
      if (ids.length) ids.push(EOS_ID);
      ids.push(...this.tok.encode(doc.slice(from, from + 8 * T)));
    }
    return Int32Array.from(ids.slice(0, T));
  }
}

/** A random character position in the split's documents (documents ∝ length; one draw). */
function randomSpot(s: Split, rng: Rng): { doc: string; start: number } {
  const at = rng.next() * s.cum[s.cum.length - 1];
  let d = 0;
  while (s.cum[d] <= at) d++;
  return { doc: s.docs[d], start: Math.floor(at - (d ? s.cum[d - 1] : 0)) };
}

const window = (start: number, T: number): [number, number] => [start, start + T];
