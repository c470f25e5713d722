/**
 * Effect-typed stages for the experiment system: each takes a JSON-serialisable parameter
 * object and returns JSON-serialisable output, failing with a typed DataError whose message
 * names the field and the fix. The work itself is in the plain functions they wrap.
 */
import { Effect, Schema } from "effect";
import { type Chunked, type ChunkParams, chunkPlain } from "./chunker.ts";
import { DataError, DataInputError } from "./errors.ts";
import { buildHaystackPlain, type Haystack, type HaystackParams } from "./haystack.ts";
import { POSITIONS } from "./lengths.ts";
import { DATASETS, generateProblems, type Problem, type ProblemSpec } from "./problems.ts";
import { type Metric, METRICS, type ScoredItem, scoreItem } from "./scorers.ts";
import { RECORD_TASKS, SPLITS } from "./student_records.ts";
import { BABI_TASKS } from "./babi_world.ts";

/**
 * Run a plain function as a stage. Its thrown errors (DataInputError for bad data, Error
 * from tokenizer/corpus loading) already name the file/field and the fix; they become a
 * DataError prefixed with the stage name.
 */
function attempt<A>(stage: string, fn: () => A): Effect.Effect<A, DataError> {
  return Effect.try({
    try: fn,
    catch: (e) =>
      new DataError({ message: `${stage}: ${e instanceof Error ? e.message : String(e)}` }),
  });
}

/** Schema of a problem spec (config files, CLI): types here, value rules in resolveSpec. */
export const ProblemSpecSchema = Schema.Struct({
  dataset: Schema.Literals(DATASETS),
  task: Schema.Literals([...BABI_TASKS, ...RECORD_TASKS]),
  length: Schema.String,
  split: Schema.Literals(SPLITS),
  n: Schema.Int,
  seed: Schema.Int,
  position: Schema.optionalKey(Schema.Literals(POSITIONS)),
  format: Schema.optionalKey(Schema.Literals(["perk", "babilong"])),
  corpus: Schema.optionalKey(Schema.String),
  tokenizer: Schema.optionalKey(Schema.String),
  babiSource: Schema.optionalKey(Schema.String),
  segmentTokens: Schema.optionalKey(Schema.Int),
});

/** Validate an untrusted spec (e.g. from a YAML config). */
export const decodeProblemSpec = (input: unknown): Effect.Effect<ProblemSpec, DataError> =>
  Schema.decodeUnknownEffect(ProblemSpecSchema)(input).pipe(
    Effect.mapError((e) => new DataError({ message: `problem spec: ${e.message}` })),
  );

/** Stage `build haystack`: distractor sentences filled to a token budget. */
export const buildHaystack = (params: HaystackParams): Effect.Effect<Haystack, DataError> =>
  attempt("build haystack", () => buildHaystackPlain(params));

/** Stage `chunk`: ~256-token segments with the facts placed at random sentence boundaries. */
export const chunk = (params: ChunkParams): Effect.Effect<Chunked, DataError> =>
  attempt("chunk", () => chunkPlain(params));

/** Stage `build problems`: the problems of a spec (seeded, stable per index). */
export const buildProblems = (spec: ProblemSpec): Effect.Effect<Problem[], DataError> =>
  attempt("build problems", () => generateProblems(spec));

/** Input of the `score` stage. */
export interface ScoreParams {
  readonly metrics: Metric[];
  readonly items: ScoredItem[];
}

/** Output of the `score` stage: mean of each metric and per-item scores. */
export interface ScoreReport {
  readonly n: number;
  readonly mean: Record<string, number>;
  readonly perItem: Record<string, number[]>;
}

export function scorePlain(p: ScoreParams): ScoreReport {
  for (const m of p.metrics) {
    if (!METRICS.includes(m)) {
      throw new DataInputError(`metric "${m}": use ${METRICS.join(", ")}`);
    }
  }
  const perItem: Record<string, number[]> = {}, mean: Record<string, number> = {};
  for (const m of p.metrics) {
    perItem[m] = p.items.map((it) => scoreItem(m, it));
    mean[m] = perItem[m].length ? perItem[m].reduce((a, b) => a + b, 0) / perItem[m].length : 0;
  }
  return { n: p.items.length, mean, perItem };
}

/** Stage `score`. */
export const score = (params: ScoreParams): Effect.Effect<ScoreReport, DataError> =>
  attempt("score", () => scorePlain(params));
