/**
 * Scorers. PERK: exact match of SQuAD-normalised text inside <output>…</output> (the whole
 * string when the tags are missing) and token F1. BabiLong: the label-set scorer for prose
 * answers. HotpotQA/TriviaQA: substring exact match.
 */

/** SQuAD normalisation: lowercase, drop punctuation and articles, collapse spaces. */
export function normalizeAnswer(s: string): string {
  return s.toLowerCase()
    .replace(/[!-\/:-@\[-`{-~]/g, "") // string.punctuation, deleted as SQuAD does
    .replace(/\b(a|an|the)\b/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/** Text inside <output>…</output>; after a lone <output>; else the whole string. */
export function extractOutput(s: string): string {
  const lower = s.toLowerCase();
  const open = lower.indexOf("<output>");
  if (open < 0) return s;
  const from = open + "<output>".length;
  const close = lower.indexOf("</output>", from);
  return close < 0 ? s.slice(from) : s.slice(from, close);
}

/** PERK's metric: exact match of normalised <output> text. */
export function perkExactMatch(prediction: string, target: string): boolean {
  return normalizeAnswer(extractOutput(prediction)) === normalizeAnswer(extractOutput(target));
}

/** SQuAD token F1 between normalised <output> texts. */
export function tokenF1(prediction: string, target: string): number {
  const p = normalizeAnswer(extractOutput(prediction)).split(" ").filter(Boolean);
  const t = normalizeAnswer(extractOutput(target)).split(" ").filter(Boolean);
  if (!p.length || !t.length) return p.length === t.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of t) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      common++;
      counts.set(w, c - 1);
    }
  }
  if (!common) return 0;
  const precision = common / p.length, recall = common / t.length;
  return (2 * precision * recall) / (precision + recall);
}

/** The label set BabiLong scores qa1–qa3 against. */
export const BABI_LABELS = ["bathroom", "bedroom", "garden", "hallway", "kitchen", "office"];

/**
 * BabiLong's scorer: lowercase; cut at the first ".", "<context>", "<example>" or
 * "question"; the labels found in what remains, minus labels named in the question, must
 * be exactly {target}.
 */
export function babilongCorrect(
  prediction: string,
  target: string,
  question: string,
  labels: readonly string[] = BABI_LABELS,
): boolean {
  let p = prediction.toLowerCase();
  for (const stop of [".", "<context>", "<example>", "question"]) {
    const i = p.indexOf(stop);
    if (i >= 0) p = p.slice(0, i);
  }
  const q = question.toLowerCase();
  const found = labels.filter((l) => p.includes(l) && !q.includes(l));
  return found.length === 1 && found[0] === target.toLowerCase().trim();
}

/** Substring exact match: some normalised answer occurs in the normalised prediction. */
export function substringExactMatch(prediction: string, answers: readonly string[]): boolean {
  const p = normalizeAnswer(prediction);
  return answers.some((a) => {
    const n = normalizeAnswer(a);
    return n.length > 0 && p.includes(n);
  });
}

export const METRICS = ["perk-em", "token-f1", "babilong", "subem"] as const;
export type Metric = typeof METRICS[number];

/** One prediction to score. `answers` (for subem) defaults to [target]. */
export interface ScoredItem {
  readonly prediction: string;
  readonly target: string;
  readonly question?: string;
  readonly answers?: string[];
}

/** Per-item score in [0, 1] under `metric`. */
export function scoreItem(metric: Metric, item: ScoredItem): number {
  switch (metric) {
    case "perk-em":
      return perkExactMatch(item.prediction, item.target) ? 1 : 0;
    case "token-f1":
      return tokenF1(item.prediction, item.target);
    case "babilong":
      return babilongCorrect(item.prediction, extractOutput(item.target), item.question ?? "")
        ? 1
        : 0;
    case "subem":
      return substringExactMatch(item.prediction, item.answers ?? [extractOutput(item.target)])
        ? 1
        : 0;
  }
}
