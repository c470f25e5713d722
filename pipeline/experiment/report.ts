/**
 * Results tables: one row per method × task × train length × test length (× sweep point),
 * accuracy as a fraction with n and a 95% Wilson interval, encode time and peak GPU bytes;
 * in results.md also the best constant answer per task × test length, each method's share
 * of empty predictions, its first predictions beside their targets, on bAbI its answers by
 * kind (right, another room of the one asked, another room of the story, …), and (when the
 * control `context-mode` ran) how often each method gave its question-blind answer.
 */
import { ANSWER_KIND_LABELS, ANSWER_KINDS } from "../data/babi_answers.ts";
import {
  agreements,
  answerKinds,
  type ConstantAnswer,
  constantAnswers,
  methodOutputs,
  type PredictionRecord,
} from "./predictions.ts";

/** What a scoring stage reports for one cell. */
export interface ResultRow {
  readonly method: string;
  readonly task: string;
  readonly train_length: string;
  readonly test_length: string;
  readonly n: number;
  readonly correct: number;
  readonly ms_per_problem: number;
  readonly peak_bytes: number;
}

/** A row with the sweep point it belongs to. */
export interface SweptRow extends ResultRow {
  readonly sweep: Readonly<Record<string, unknown>>;
}

/** The exact CSV header (contract); swept parameters follow as extra columns. */
export const CSV_HEADER =
  "method,task,train_length,test_length,n,accuracy,ci_low,ci_high,ms_per_problem,peak_bytes";

/** 95% Wilson score interval of `correct` successes out of `n`. */
export function wilson(correct: number, n: number, z = 1.959963984540054): [number, number] {
  if (n <= 0) return [0, 1];
  const p = correct / n, z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

function csvCell(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

const round = (x: number, d: number) => Number(x.toFixed(d));

/** results.csv text: the contract header, plus one column per swept parameter. */
export function resultsCsv(rows: readonly SweptRow[], sweptKeys: readonly string[]): string {
  const lines = [[CSV_HEADER, ...sweptKeys].join(",")];
  for (const r of rows) {
    const [lo, hi] = wilson(r.correct, r.n);
    lines.push(
      [
        r.method,
        r.task,
        r.train_length,
        r.test_length,
        r.n,
        round(r.n ? r.correct / r.n : 0, 6),
        round(lo, 6),
        round(hi, 6),
        round(r.ms_per_problem, 3),
        Math.round(r.peak_bytes),
        ...sweptKeys.map((k) => r.sweep[k]),
      ].map(csvCell).join(","),
    );
  }
  return lines.join("\n") + "\n";
}

/** 1234567 → "1.2 MB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB"];
  let v = bytes, u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** 850 → "850 ms", 12345 → "12.3 s", 408164 → "6.8 min" (the CSV keeps the milliseconds). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}`;

function table(header: string[], body: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `|${header.map(() => "---").join("|")}|`,
    ...body.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function mainTable(rows: readonly SweptRow[], sweptKeys: readonly string[]): string {
  const header = [
    "method",
    "task",
    "train",
    "test",
    ...sweptKeys,
    "accuracy %",
    "n",
    "95% CI",
    "time/problem",
    "peak GPU",
  ];
  const body = rows.map((r) => {
    const [lo, hi] = wilson(r.correct, r.n);
    return [
      r.method,
      r.task,
      r.train_length,
      r.test_length,
      ...sweptKeys.map((k) => String(r.sweep[k])),
      pct(r.n ? r.correct / r.n : 0),
      String(r.n),
      `${pct(lo)}–${pct(hi)}`,
      formatDuration(r.ms_per_problem),
      formatBytes(r.peak_bytes),
    ];
  });
  return table(header, body);
}

/**
 * One table per swept parameter (as the paper's Tables 2–4): rows are its values, columns
 * are method × test length, cells the accuracy pooled over the other swept parameters.
 */
function sweepTable(rows: readonly SweptRow[], key: string): string {
  const values = [...new Set(rows.map((r) => JSON.stringify(r.sweep[key])))];
  const columns = [...new Set(rows.map((r) => `${r.method} @ ${r.test_length}`))];
  const body = values.map((v) =>
    [
      JSON.parse(v) as string,
      ...columns.map((c) => {
        const cell = rows.filter((r) =>
          JSON.stringify(r.sweep[key]) === v && `${r.method} @ ${r.test_length}` === c
        );
        const n = cell.reduce((a, r) => a + r.n, 0), k = cell.reduce((a, r) => a + r.correct, 0);
        return n ? `${pct(k / n)} (n=${n})` : "–";
      }),
    ].map(String)
  );
  return table([key, ...columns], body);
}

/** The main table alone (what `deno task results` prints). */
export function resultsTable(rows: readonly SweptRow[], sweptKeys: readonly string[]): string {
  return mainTable(rows, sweptKeys);
}

/** "hallway 22.5% (n = 40)". */
export function constantLabel(c: ConstantAnswer): string {
  return `${c.answer} ${pct(c.rate)}% (n = ${c.n})`;
}

function constantTable(constants: readonly ConstantAnswer[]): string {
  return table(
    ["task", "test", "best constant answer"],
    constants.map((c) => [c.task, c.test_length, constantLabel(c)]),
  );
}

/**
 * A prediction or target as a short code span that cannot break the table row. Long text
 * loses its middle, not its end: answers come last (`…<output>kitchen</output>`).
 */
function cellText(s: string, max = 120): string {
  if (s.trim() === "") return "(empty)";
  const flat = s.replace(/\r?\n/g, " ⏎ ").replaceAll("`", "'");
  const head = Math.floor(max / 3), tail = max - head - 1;
  const short = flat.length > max ? `${flat.slice(0, head)}…${flat.slice(-tail)}` : flat;
  return `\`${short.replaceAll("|", "\\|")}\``;
}

function predictionSections(records: readonly PredictionRecord[]): string[] {
  const parts = [
    "## Predictions",
    "",
    "Per method: the share of predictions that are empty after trimming, and its first " +
    "three test problems (all of them are in predictions.jsonl).",
    "",
  ];
  for (const m of methodOutputs(records)) {
    parts.push(
      `### ${m.method}`,
      "",
      `empty predictions: ${pct(m.n ? m.empty / m.n : 0)}% (${m.empty} of ${m.n})`,
      "",
      table(
        ["problem", "target", "prediction", "correct"],
        m.samples.map((r) => [
          r.id,
          cellText(r.target),
          cellText(r.prediction),
          String(round(r.correct, 3)),
        ]),
      ),
      "",
    );
  }
  return parts;
}

/**
 * results.md: the main table, the best constant answers, one table per swept parameter,
 * the predictions (when `records` are given), then the figures.
 */
export function resultsMarkdown(
  title: string,
  rows: readonly SweptRow[],
  sweptKeys: readonly string[],
  figures: readonly string[] = [],
  note = "",
  records: readonly PredictionRecord[] = [],
): string {
  const parts = [`# ${title}`, "", mainTable(rows, sweptKeys), ""];
  if (note) parts.push(note, "");
  parts.push(
    "Accuracy is the mean score (exact match: the fraction correct) with its 95% Wilson " +
      "interval; time and peak GPU bytes are per test problem (encode + answer).",
    "",
  );
  if (records.length) {
    const section = (title: string, intro: string, body: string) =>
      parts.push(`## ${title}`, "", intro, "", body, "");
    section(
      "Best constant answer",
      "Always giving the most common answer among a task × test length's test problems " +
        "scores this share; an accuracy means something only above it.",
      constantTable(constantAnswers(records)),
    );
    const kinds = answerKinds(records);
    if (kinds.length) {
      section(
        "Answers by kind (bAbI)",
        "Each answer read against its story's facts: another room of the one asked (QA1: the " +
          "person's other move — which of them is the last was missed; QA2/QA3: a room of someone " +
          "who took or dropped the object) or another room of the story (the link to the one " +
          "asked is missing). pipeline/data/babi_answers.ts.",
        table(
          ["method", "n", ...ANSWER_KINDS.map((k) => ANSWER_KIND_LABELS[k])],
          kinds.map((k) => [
            k.method,
            String(k.n),
            ...ANSWER_KINDS.map((kind) =>
              `${k.counts[kind]} (${pct(k.n ? k.counts[kind] / k.n : 0)}%)`
            ),
          ]),
        ),
      );
    }
    const agree = agreements(records);
    if (agree.length) {
      section(
        "Agreement with context-mode",
        "context-mode answers the location the context names most often, without reading the " +
          "question. A method that mostly agrees with it reads the context, not the question.",
        table(
          ["method", "same answer as context-mode"],
          agree.map((a) => [a.method, `${pct(a.n ? a.same / a.n : 0)}% (${a.same} of ${a.n})`]),
        ),
      );
    }
  }
  for (const key of sweptKeys) parts.push(`## Sweep: ${key}`, "", sweepTable(rows, key), "");
  if (records.length) parts.push(...predictionSections(records));
  if (figures.length) {
    parts.push("## Figures", "", ...figures.map((f) => `![${f}](${f})`), "");
  }
  return parts.join("\n");
}
