/**
 * Per-problem records of a run (predictions.jsonl) and what they show beside the accuracy:
 * the best constant answer per task × test length (BabiLong's answers come from a handful
 * of labels, so an accuracy means something only above the rate of always giving the most
 * common one), the share of empty predictions per method (a model that stops at once scores
 * 0 for a reason no accuracy shows), and the first predictions beside their targets.
 */

import { type AnswerKind, noKinds } from "../data/babi_answers.ts";
import { extractOutput, normalizeAnswer } from "../data/scorers.ts";

/** One method's answer to one test problem, as the score stage scored it. */
export interface PredictionRecord {
  readonly method: string;
  readonly task: string;
  readonly train_length: string;
  readonly test_length: string;
  readonly id: string;
  readonly question: string;
  /** The reference the metric compares against (the answer inside `<output>…</output>`). */
  readonly target: string;
  readonly prediction: string;
  /** The metric's per-problem score, what the table sums: 1/0 for the exact-match metrics. */
  readonly correct: number;
  readonly ms: number;
  /** bAbI problems: what kind of answer it is (pipeline/data/babi_answers.ts). */
  readonly answer_kind?: AnswerKind;
  /** The sweep point, present only in swept runs. */
  readonly sweep?: Readonly<Record<string, unknown>>;
}

/** predictions.jsonl: one line per record, fields in a fixed order. */
export function predictionsJsonl(records: readonly PredictionRecord[]): string {
  return records.map((r) =>
    JSON.stringify({
      method: r.method,
      task: r.task,
      train_length: r.train_length,
      test_length: r.test_length,
      ...(r.sweep ? { sweep: r.sweep } : {}),
      id: r.id,
      question: r.question,
      target: r.target,
      prediction: r.prediction,
      correct: r.correct,
      ms: r.ms,
      ...(r.answer_kind ? { answer_kind: r.answer_kind } : {}),
    }) + "\n"
  ).join("");
}

/** The most common answer among a task × test length's test problems, and its share. */
export interface ConstantAnswer {
  readonly task: string;
  readonly test_length: string;
  readonly answer: string;
  /** Test problems whose answer it is. */
  readonly count: number;
  /** Distinct test problems (by id: methods, train lengths and sweep points share them). */
  readonly n: number;
  readonly rate: number;
}

const uniq = <T>(xs: readonly T[]) => [...new Set(xs)];

/**
 * The best constant answer per task × test length, in order of first appearance. Answers
 * are compared trimmed; a tie goes to the alphabetically first answer, so reruns agree.
 */
export function constantAnswers(records: readonly PredictionRecord[]): ConstantAnswer[] {
  const cellOf = (r: PredictionRecord) => `${r.task}\u0000${r.test_length}`;
  return uniq(records.map(cellOf)).map((cell) => {
    const answers = new Map<string, string>();
    for (const r of records) if (cellOf(r) === cell) answers.set(r.id, r.target.trim());
    const counts = new Map<string, number>();
    for (const a of answers.values()) counts.set(a, (counts.get(a) ?? 0) + 1);
    const [answer, count] = [...counts].sort((a, b) =>
      b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
    )[0];
    const [task, test_length] = cell.split("\u0000");
    return { task, test_length, answer, count, n: answers.size, rate: count / answers.size };
  });
}

/** What one method answered: how often nothing, and its first few answers. */
export interface MethodOutputs {
  readonly method: string;
  /** Its predictions (every cell and sweep point). */
  readonly n: number;
  /** Predictions that are empty after trimming. */
  readonly empty: number;
  /** Its first `samples` records: the first test problems of its first cell. */
  readonly samples: readonly PredictionRecord[];
}

/** Per method, in order of first appearance. */
export function methodOutputs(
  records: readonly PredictionRecord[],
  samples = 3,
): MethodOutputs[] {
  return uniq(records.map((r) => r.method)).map((method) => {
    const mine = records.filter((r) => r.method === method);
    return {
      method,
      n: mine.length,
      empty: mine.filter((r) => r.prediction.trim() === "").length,
      samples: mine.slice(0, samples),
    };
  });
}

/** The answer a prediction gives, as PERK's metric reads it (`<output>` text, normalised). */
const answerText = (s: string) => normalizeAnswer(extractOutput(s));

/** How often a method gave the same answer as a reference method on the same problems. */
export interface Agreement {
  readonly method: string;
  readonly reference: string;
  /** Problems both answered (same cell, sweep point and id). */
  readonly n: number;
  /** Of those, the ones where the two answers are equal. */
  readonly same: number;
}

/**
 * Per method, its agreement with `reference` (by default the question-blind control
 * `context-mode`): a method that mostly gives the context's most frequent location reads the
 * context but not the question, whatever its accuracy. Empty when the reference did not run.
 */
export function agreements(
  records: readonly PredictionRecord[],
  reference = "context-mode",
): Agreement[] {
  const key = (r: PredictionRecord) =>
    [r.task, r.train_length, r.test_length, JSON.stringify(r.sweep ?? {}), r.id].join("\u0000");
  const ref = new Map(
    records.filter((r) => r.method === reference).map((r) => [key(r), answerText(r.prediction)]),
  );
  if (ref.size === 0) return [];
  return uniq(records.map((r) => r.method)).filter((m) => m !== reference).map((method) => {
    let n = 0, same = 0;
    for (const r of records) {
      if (r.method !== method) continue;
      const a = ref.get(key(r));
      if (a === undefined) continue;
      n++;
      if (answerText(r.prediction) === a) same++;
    }
    return { method, reference, n, same };
  });
}

/** One method's answers counted by kind, over its records that have one (bAbI problems). */
export interface KindCounts {
  readonly method: string;
  readonly n: number;
  readonly counts: Readonly<Record<AnswerKind, number>>;
}

/** Per method with bAbI records, in order of first appearance; empty when none has a kind. */
export function answerKinds(records: readonly PredictionRecord[]): KindCounts[] {
  return uniq(records.filter((r) => r.answer_kind).map((r) => r.method)).map((method) => {
    const counts = noKinds();
    let n = 0;
    for (const r of records) {
      if (r.method !== method || !r.answer_kind) continue;
      counts[r.answer_kind]++;
      n++;
    }
    return { method, n, counts };
  });
}
