/**
 * Dense bAbI tracking stories for pretraining: QA1's world (four people moving between six
 * rooms, in the released sentence forms), a question after about every other fact, answered
 * in BabiLong's answer form: `Mary went to the kitchen. Where is Mary? The most recent
 * location of Mary is <output>kitchen</output>.` A real pretrained LM brings the skill these teach
 * (find the last fact about a person, copy its room) to BabiLong; the tiny base does not get
 * it from prose, and FT-ICR's few hundred problems are far too few to grow it from scratch
 * (tests/baselines_learning_test.ts has the measurements). Pretraining on these stories
 * gives the base that skill; FT-ICR then has to learn to apply it inside 1K+ tokens of prose
 * and BabiLong's instructions.
 *
 * A story is one window: it starts at the window's first token and is cut at its end.
 * `answers` marks the first token of each answered room, for the pretraining loss weight.
 *
 * Sparse stories (`prose`): prose sentences between the facts, as BabiLong hides QA1's facts
 * in a haystack. Dense stories put every fact within a few dozen tokens of its question;
 * QA1-1K puts about six facts in 1K tokens of prose, so a question's fact can sit 1,000
 * tokens back, and the skill a base learns from dense stories does not carry into a
 * haystack (measured: tests/baselines_learning_test.ts). Sparse stories train at those
 * distances: from scratch they taught the tiny base nothing in the budgets measured, but
 * after dense ones they carry its skill to 1K tokens (pretrain_curriculum.ts,
 * pipeline/model/README.md).
 */
import { ACTORS, LOCATIONS, MOVE_VERBS } from "../data/babi_world.ts";
import type { Rng } from "../data/rng.ts";
import type { CompactTokenizer } from "../tokenizer/compact_vocab.ts";

export interface StoryWindow {
  /** (seqLen) token ids. */
  readonly ids: Int32Array;
  /** (seqLen) 1 on the first token of an answered room, else 0. */
  readonly answers: Uint8Array;
}

/** Chance of a question after each fact (QA1's released stories ask after every second). */
const ASK = 0.5;

/** Prose between a sparse story's facts. */
export interface StoryProse {
  /**
   * Mean number of prose sentences after each fact; 0: dense. In a sparse story a question
   * follows every fact (not every other) and comes after the prose, as BabiLong's question
   * comes after the haystack: the prose keeps each question far from its fact, and
   * long-range answers are what sparse stories are for.
   */
  readonly sentences: number;
  /** One prose sentence (no surrounding spaces), drawn from `rng`. */
  readonly sentence: (rng: Rng) => string;
}

/**
 * Whom a question asks about. "others" (the default): anyone placed but the one who just
 * moved, so that "copy the last room" is never right and only retrieval pays. "anyone":
 * the one who just moved too, as QA1's questions do (the last room mentioned answers 47%
 * of QA1-1K's test questions in BabiLong's format, 30% in PERK's shuffled one).
 */
export type StoryAsk = "others" | "anyone";

export interface StoryOptions {
  readonly prose?: StoryProse;
  readonly ask?: StoryAsk;
}

/** One window of `seqLen` tokens of a fresh story drawn from `rng`. */
export function trackingStory(
  rng: Rng,
  tok: CompactTokenizer,
  seqLen: number,
  o: StoryOptions = {},
): StoryWindow {
  const ids: number[] = [], answers: number[] = [];
  // Only a room's first token is marked: it decides the room ("hall" of "hall|way").
  const push = (text: string, answer = false) => {
    tok.encode(text).forEach((id, i) => {
      ids.push(id);
      answers.push(answer && i === 0 ? 1 : 0);
    });
  };
  const sparse = o.prose !== undefined && o.prose.sentences > 0;
  const where = new Map<string, string>();
  while (ids.length < seqLen) {
    const who = rng.pick(ACTORS);
    const to = rng.pick(LOCATIONS.filter((l) => l !== where.get(who)));
    where.set(who, to);
    push(`${ids.length ? " " : ""}${who} ${rng.pick(MOVE_VERBS)} the ${to}.`);
    if (sparse) {
      // 0 … 2·mean sentences, so the gaps (and the fact-to-question distances) vary.
      for (let k = rng.int(2 * Math.round(o.prose!.sentences) + 1); k > 0; k--) {
        if (ids.length >= seqLen) break;
        push(` ${o.prose!.sentence(rng)}`);
      }
    }
    if (sparse || rng.next() < ASK) {
      // With "others", anyone placed so far but the one who just moved (when there is such
      // a person): with the last fact's room right 0% of the time, a model cannot settle on
      // "copy the last room" — measured in PyTorch, that shortcut stalls the answer accuracy
      // at 50%.
      const placed = [...where.keys()];
      const others = o.ask === "anyone" ? placed : placed.filter((a) => a !== who);
      const asked = others.length ? rng.pick(others) : who;
      push(` Where is ${asked}? The most recent location of ${asked} is <output>`);
      push(where.get(asked)!, true);
      push("</output>.");
    }
  }
  return {
    ids: Int32Array.from(ids.slice(0, seqLen)),
    answers: Uint8Array.from(answers.slice(0, seqLen)),
  };
}
