/**
 * Problems = context segments + question + answer + supporting facts + metadata, built
 * deterministically from (spec, index): problem i of a split is the same whatever n is,
 * and splits use disjoint seed streams (and, for Student Records, disjoint entities).
 */
import { tokenizerByName } from "../tokenizer/by_name.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { readBabiFolder } from "./babi_reader.ts";
import {
  BABI_TASKS,
  type BabiSample,
  type BabiTask,
  eventPrefixedFacts,
  generateBabiStory,
} from "./babi_world.ts";
import { chunkPlain, documents } from "./chunker.ts";
import { DEFAULT_CORPUS } from "./corpus.ts";
import { DataInputError } from "./errors.ts";
import { buildHaystackWith, insertFacts, spacedTokens } from "./haystack.ts";
import { type Position, positionRange, POSITIONS, windowTokens } from "./lengths.ts";
import { babilongPrompt, perkPrompt, recordsPrompt, supportTarget } from "./prompts.ts";
import { deriveSeed, seededRng } from "./rng.ts";
import {
  fillRecords,
  formatRecord,
  RECORD_TASKS,
  recordQuestion,
  type RecordTask,
  type Split,
  SPLITS,
} from "./student_records.ts";

export type Dataset = "babilong" | "student-records";
export const DATASETS: readonly Dataset[] = ["babilong", "student-records"];
/** "perk": ~256-token "Document i:" segments, event-prefixed facts; "babilong": one text. */
export type ContextFormat = "perk" | "babilong";

/** What to generate (JSON-serialisable; the experiment system hashes it). */
export interface ProblemSpec {
  readonly dataset: Dataset;
  readonly task: BabiTask | RecordTask;
  /** "1k" … "128k" (×1024) or a token count. */
  readonly length: string;
  readonly split: Split;
  readonly n: number;
  readonly seed: number;
  readonly position?: Position;
  readonly format?: ContextFormat;
  readonly corpus?: string;
  readonly tokenizer?: string;
  /** "simulator" (default) or a folder of released bAbI files. */
  readonly babiSource?: string;
  readonly segmentTokens?: number;
}

/** One problem; one JSONL line. See pipeline/data/README.md for the schema. */
export interface Problem {
  readonly id: string;
  readonly dataset: Dataset;
  readonly task: string;
  readonly split: Split;
  readonly length: string;
  readonly targetTokens: number;
  readonly contextTokens: number;
  readonly tokenizer: string;
  readonly position: Position;
  readonly format: ContextFormat;
  readonly seed: number;
  readonly index: number;
  /** Segments as the model sees them ("Document {i}: …" for the perk format). */
  readonly context: string[];
  readonly question: string;
  readonly answer: string;
  readonly support: string[];
  /** Segment index of each supporting fact/record. */
  readonly supportSegments: number[];
  /** PERK's training target. */
  readonly target: string;
  readonly answerTarget: string;
  /** PERK's question prompt. */
  readonly prompt: string;
}

/** Check a spec and fill defaults; errors name the field and the fix. */
export function resolveSpec(spec: ProblemSpec): Required<ProblemSpec> {
  if (!DATASETS.includes(spec.dataset)) {
    throw new DataInputError(`dataset "${spec.dataset}": use ${DATASETS.join(" or ")}`);
  }
  const tasks: readonly string[] = spec.dataset === "babilong" ? BABI_TASKS : RECORD_TASKS;
  if (!tasks.includes(spec.task)) {
    throw new DataInputError(`task "${spec.task}" for ${spec.dataset}: use ${tasks.join(", ")}`);
  }
  if (!SPLITS.includes(spec.split)) {
    throw new DataInputError(`split "${spec.split}": use ${SPLITS.join(", ")}`);
  }
  if (!Number.isInteger(spec.n) || spec.n < 0) {
    throw new DataInputError(`n: a count ≥ 0 is needed, got ${spec.n}`);
  }
  if (!Number.isInteger(spec.seed)) throw new DataInputError(`seed: an integer, got ${spec.seed}`);
  const position = spec.position ?? "rnd";
  if (!POSITIONS.includes(position)) {
    throw new DataInputError(`position "${position}": use ${POSITIONS.join(", ")}`);
  }
  const format = spec.format ?? "perk";
  if (format !== "perk" && format !== "babilong") {
    throw new DataInputError(`format "${format}": use perk or babilong`);
  }
  windowTokens(spec.length);
  return {
    position,
    format,
    corpus: DEFAULT_CORPUS,
    tokenizer: "gpt2",
    babiSource: "simulator",
    segmentTokens: 256,
    ...Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)),
  } as Required<ProblemSpec>;
}

/** All n problems of a spec. */
export function generateProblems(spec: ProblemSpec, tok?: TextTokenizer): Problem[] {
  const s = resolveSpec(spec);
  const t = tok ?? tokenizerByName(s.tokenizer);
  return Array.from({ length: s.n }, (_, i) => generateProblem(s, i, t));
}

/** Problem `index` of a (resolved) spec. */
export function generateProblem(
  s: Required<ProblemSpec>,
  index: number,
  tok: TextTokenizer,
): Problem {
  return s.dataset === "babilong" ? babilongProblem(s, index, tok) : recordsProblem(s, index, tok);
}

function meta(s: Required<ProblemSpec>, index: number, targetTokens: number) {
  return {
    id: `${s.dataset}/${s.task}/${s.length}/${s.split}/${s.position}/${s.seed}/${index}`,
    dataset: s.dataset,
    task: s.task,
    split: s.split,
    length: s.length,
    targetTokens,
    tokenizer: s.tokenizer,
    position: s.position,
    format: s.format,
    seed: s.seed,
    index,
  };
}

const releasedCache = new Map<string, BabiSample[]>();
/** Draws of a bAbI sample per problem before a length counts as too short for the task. */
const MAX_REDRAWS = 64;

/**
 * The bAbI sample behind problem `index`: simulated, or drawn from released files. `attempt`
 * > 0 draws another one (a sample whose facts do not fit the length is redrawn); attempt 0 is
 * the draw every earlier problem set used.
 */
function babiSample(s: Required<ProblemSpec>, index: number, attempt = 0): BabiSample {
  const task = s.task as BabiTask;
  const rng = seededRng(
    attempt === 0
      ? deriveSeed(s.seed, "babi", task, s.split, index)
      : deriveSeed(s.seed, "babi", task, s.split, index, "redraw", attempt),
  );
  if (s.babiSource === "simulator") {
    for (;;) {
      const story = generateBabiStory(task, rng);
      if (story.length) return rng.pick(story);
    }
  }
  const key = `${s.babiSource}|${task}|${s.split}`;
  let pool = releasedCache.get(key);
  if (!pool) {
    // Released files have train and test only: validation = every 10th train sample.
    const all = readBabiFolder(s.babiSource, task, s.split === "test" ? "test" : "train");
    pool = s.split === "test"
      ? all
      : all.filter((_, i) => (i % 10 === 0) === (s.split === "validation"));
    releasedCache.set(key, pool);
  }
  return pool[rng.int(pool.length)];
}

function babilongProblem(s: Required<ProblemSpec>, index: number, tok: TextTokenizer): Problem {
  const targetTokens = windowTokens(s.length);
  // Long stories (QA3's run past 1K tokens of facts) are redrawn, as BabiLong keeps only
  // samples that fit the window; a length that almost nothing fits is an error.
  let sample: BabiSample | undefined, facts: string[] = [], factTokens = 0, longest = 0;
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    const x = babiSample(s, index, attempt);
    facts = s.format === "perk" ? eventPrefixedFacts(x.facts) : x.facts;
    factTokens = facts.reduce((n, f) => n + spacedTokens(tok, f), 0);
    if (factTokens < targetTokens) {
      sample = x;
      break;
    }
    longest = Math.max(longest, factTokens);
  }
  if (!sample) {
    throw new DataInputError(
      `length ${s.length}: none of ${MAX_REDRAWS} ${s.task} stories drawn for problem ${index} ` +
        `fits (facts alone take up to ${longest} tokens); use a longer length`,
    );
  }
  const haystack = buildHaystackWith(tok, {
    corpus: s.corpus,
    tokenizer: s.tokenizer,
    targetTokens: targetTokens - factTokens,
    seed: deriveSeed(s.seed, "haystack", s.task, s.split, s.length, index),
  });
  const placeSeed = deriveSeed(s.seed, "place", s.task, s.split, s.length, index);
  const support = sample.support.map((i) => facts[i]);
  let context: string[], supportSegments: number[];
  if (s.format === "perk") {
    const chunked = chunkPlain({
      haystack,
      facts,
      position: s.position,
      segmentTokens: s.segmentTokens,
      seed: placeSeed,
    });
    context = documents(chunked.segments);
    supportSegments = sample.support.map((i) => chunked.factSegments[i]);
  } else {
    const { items } = insertFacts(haystack.sentences, facts, s.position, seededRng(placeSeed));
    context = [items.join(" ")];
    supportSegments = support.map(() => 0);
  }
  return {
    ...meta(s, index, targetTokens),
    contextTokens: haystack.totalTokens + factTokens,
    context,
    question: sample.question,
    answer: sample.answer,
    support,
    supportSegments,
    target: supportTarget(support, sample.answer),
    answerTarget: sample.answer,
    prompt: perkPrompt(context.length, sample.question),
  };
}

function recordsProblem(s: Required<ProblemSpec>, index: number, tok: TextTokenizer): Problem {
  const targetTokens = windowTokens(s.length);
  const rng = seededRng(deriveSeed(s.seed, "records", s.task, s.split, s.length, index));
  const { records, tokens } = fillRecords(tok, rng, s.split, targetTokens);
  const q = recordQuestion(s.task as RecordTask, records, rng);
  // Place the records a question is about in the requested third (aggregates use them all).
  if (s.task !== "aggregate" && s.position !== "rnd") {
    const moving = records.filter((r) => q.supportIds.includes(r.id));
    const rest = records.filter((r) => !q.supportIds.includes(r.id));
    for (const r of moving) {
      const [lo, hi] = positionRange(s.position, rest.length);
      rest.splice(lo + rng.int(hi - lo + 1), 0, r);
    }
    records.splice(0, records.length, ...rest);
  }
  const lines = records.map(formatRecord);
  const supportSegments = s.task === "aggregate"
    ? []
    : q.supportIds.map((id) => records.findIndex((r) => r.id === id));
  const context = s.format === "perk" ? documents(lines) : [lines.join("\n")];
  return {
    ...meta(s, index, targetTokens),
    contextTokens: tokens,
    context,
    question: q.question,
    answer: q.answer,
    support: supportSegments.map((i) => lines[i]),
    supportSegments: s.format === "perk" ? supportSegments : supportSegments.map(() => 0),
    target: q.answer,
    answerTarget: q.answer,
    prompt: perkPrompt(context.length, q.question),
  };
}

/**
 * The in-context prompt a baseline sees (whole context + question, BabiLong's format with
 * `examples` worked examples for BabiLong tasks).
 */
export function inContextPrompt(p: Problem, examples = 2): string {
  const text = p.context.map((c) => c.replace(/^Document \d+: /, "")).join(
    p.dataset === "babilong" ? " " : "\n",
  );
  return p.dataset === "babilong"
    ? babilongPrompt(p.task as BabiTask, text, p.question, examples)
    : recordsPrompt(text, p.question);
}
