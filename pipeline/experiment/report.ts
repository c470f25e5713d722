/**
 * Results tables: one row per method × task × train length × test length (× sweep point),
 * accuracy as a fraction with n and a 95% Wilson interval, encode time and peak GPU bytes.
 */

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

/** results.md: the main table, then one table per swept parameter, then the figures. */
export function resultsMarkdown(
  title: string,
  rows: readonly SweptRow[],
  sweptKeys: readonly string[],
  figures: readonly string[] = [],
  note = "",
): string {
  const parts = [`# ${title}`, "", mainTable(rows, sweptKeys), ""];
  if (note) parts.push(note, "");
  parts.push(
    "Accuracy is the mean score (exact match: the fraction correct) with its 95% Wilson " +
      "interval; time and peak GPU bytes are per test problem (encode + answer).",
    "",
  );
  for (const key of sweptKeys) parts.push(`## Sweep: ${key}`, "", sweepTable(rows, key), "");
  if (figures.length) {
    parts.push("## Figures", "", ...figures.map((f) => `![${f}](${f})`), "");
  }
  return parts.join("\n");
}
