/**
 * The data stages of every experiment graph, wrapping pipeline/data's Effect stages:
 * `build-problems` (haystack filled to the length, chunked into segments, facts placed — the
 * problems carry their chunked contexts) and `score` (a method's predictions against the
 * test problems).
 */
import { Effect, Schema } from "effect";
import type { Problem } from "../data/problems.ts";
import { type AnswerKind, answerKind } from "../data/babi_answers.ts";
import { extractOutput, METRICS } from "../data/scorers.ts";
import { buildProblems, ProblemSpecSchema, score } from "../data/stages.ts";
import type { Prediction } from "./methods.ts";
import { defineStage, type OutputCodec } from "./stage.ts";
import { problemsOf, UNIT } from "./cost.ts";

const repoRoot = new URL("../../", import.meta.url);

/**
 * The TypeScript sources a stage's output depends on, hashed into its key like kernel
 * sources, so editing the data code invalidates cached problems without a version bump.
 */
function sourcesIn(...folders: string[]): string[] {
  const out: string[] = [];
  for (const folder of folders) {
    for (const e of Deno.readDirSync(new URL(`${folder}/`, repoRoot))) {
      if (e.isFile && e.name.endsWith(".ts") && e.name !== "cli.ts") {
        out.push(`${folder}/${e.name}`);
      }
    }
  }
  return out.sort();
}

const enc = new TextEncoder(), dec = new TextDecoder();

/** Problems as a JSON Lines blob (large contexts stay out of the manifest). */
const problemsCodec: OutputCodec<Problem[]> = {
  encode: (problems) => ({
    json: { n: problems.length },
    blobs: { "problems.jsonl": enc.encode(problems.map((p) => JSON.stringify(p)).join("\n")) },
  }),
  decode: (e) => {
    const text = dec.decode(e.blobs?.["problems.jsonl"] ?? new Uint8Array());
    return text ? text.split("\n").map((l) => JSON.parse(l) as Problem) : [];
  },
};

export const problemsStage = defineStage({
  name: "build-problems",
  version: 1,
  params: ProblemSpecSchema,
  kernels: sourcesIn("pipeline/data", "pipeline/tokenizer"),
  codec: problemsCodec,
  estimate: (spec) => {
    const p = problemsOf(spec);
    return p && p.n * p.tokens * UNIT.problemsMsPerToken / 1000;
  },
  run: (spec, _inputs: Record<string, never>, ctx) =>
    buildProblems(spec).pipe(
      Effect.tap((ps) => Effect.sync(() => ctx.progress(ps.length, spec.n))),
    ),
});

/**
 * One scored test problem, kept with the score so that predictions.jsonl shows exactly what
 * the table counted. `target` is the reference the scorers compare against: the text inside
 * `<output>…</output>` of the problem's target (the whole target when it has no tags).
 */
export interface ScoredProblem {
  readonly id: string;
  readonly question: string;
  readonly target: string;
  readonly prediction: string;
  /** The metric's score: 1/0 for the exact-match metrics, the F1 for token-f1. */
  readonly score: number;
  readonly ms: number;
  /** bAbI problems: what kind of answer it is (pipeline/data/babi_answers.ts). */
  readonly kind?: AnswerKind;
}

/** Score of one cell. `correct` is the sum of per-problem scores (1/0 for exact match). */
export interface ScoreSummary {
  readonly metric: string;
  readonly n: number;
  readonly correct: number;
  readonly accuracy: number;
  readonly ms_per_problem: number;
  readonly peak_bytes: number;
  /** In test-problem order. */
  readonly perProblem: readonly ScoredProblem[];
}

export const scoreStage = defineStage({
  name: "score",
  // 2: perProblem carries question, reference, prediction and time (for predictions.jsonl).
  // 3: and, for bAbI problems, the answer's kind.
  version: 3,
  params: Schema.Struct({ metric: Schema.Literals(METRICS) }),
  kernels: ["pipeline/data/scorers.ts", "pipeline/data/babi_answers.ts"],
  estimate: () => 0,
  run: (params, inputs: { problems: Problem[]; predictions: Prediction[] }) =>
    Effect.gen(function* () {
      const byId = new Map<string, Prediction>();
      for (const p of inputs.predictions) {
        if (byId.has(p.id)) {
          return yield* Effect.fail(new Error(`prediction for problem ${p.id} appears twice`));
        }
        byId.set(p.id, p);
      }
      const missing = inputs.problems.filter((p) => !byId.has(p.id));
      if (missing.length) {
        return yield* Effect.fail(
          new Error(
            `predictions cover ${inputs.problems.length - missing.length} of ` +
              `${inputs.problems.length} test problems; missing e.g. ${missing[0].id}`,
          ),
        );
      }
      const preds = inputs.problems.map((p) => byId.get(p.id)!);
      const report = yield* score({
        metrics: [params.metric],
        items: inputs.problems.map((p, i) => ({
          prediction: preds[i].prediction,
          target: p.target,
          question: p.question,
        })),
      });
      const scores = report.perItem[params.metric];
      const n = inputs.problems.length;
      const correct = scores.reduce((a, b) => a + b, 0);
      return {
        metric: params.metric,
        n,
        correct,
        accuracy: n ? correct / n : 0,
        ms_per_problem: n ? preds.reduce((a, p) => a + p.ms, 0) / n : 0,
        peak_bytes: preds.reduce((a, p) => Math.max(a, p.peakBytes), 0),
        perProblem: inputs.problems.map((p, i) => {
          const kind = p.dataset === "babilong"
            ? answerKind(p.context.join("\n"), p.question, p.answer, preds[i].prediction)
            : undefined;
          return {
            id: p.id,
            question: p.question,
            target: extractOutput(p.target),
            prediction: preds[i].prediction,
            score: scores[i],
            ms: preds[i].ms,
            ...(kind ? { kind } : {}),
          };
        }),
      } satisfies ScoreSummary;
    }),
});
