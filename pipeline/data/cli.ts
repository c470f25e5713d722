/**
 * `deno task data <babilong|student-records> --task T --length 8k --split S --n N --seed S
 *  [--position pre|mid|post|rnd] [--format perk|babilong] [--corpus sotu|DIR|FILE.jsonl]
 *  [--tokenizer gpt2|qwen3|MODEL_DIR] [--babi-dir DIR] --out FILE.jsonl`
 * writes problems as JSON Lines (schema: pipeline/data/README.md).
 * `deno task data score --in PREDICTIONS.jsonl [--metrics perk-em,token-f1,babilong,subem]`
 * prints the mean of each metric over lines `{prediction, target, question?, answers?}`.
 */
import { callerPath, joinNegativeValues, looksLikePath } from "../cli_helpers.ts";
import { parseArgs } from "node:util";
import { Effect } from "effect";
import { DataError } from "./errors.ts";
import { readJsonl, writeJsonl } from "./jsonl.ts";
import { type Metric, METRICS, type ScoredItem } from "./scorers.ts";
import { DATASETS, type ProblemSpec } from "./problems.ts";
import { RECORD_TASKS, SPLITS } from "./student_records.ts";
import { BABI_TASKS } from "./babi_world.ts";
import { buildProblems, decodeProblemSpec, score } from "./stages.ts";

export const USAGE =
  `usage: deno task data <babilong|student-records> --task qa1|qa2|qa3|recall|relation|aggregate
         --length 1k|2k|4k|8k|16k|32k|64k|128k --split train|validation|test --n N --seed S
         [--position pre|mid|post|rnd] [--format perk|babilong] [--corpus sotu|DIR|FILE.jsonl]
         [--tokenizer gpt2|qwen3|MODEL_DIR] [--babi-dir DIR] [--segment-tokens 256] --out FILE.jsonl
       deno task data score --in PREDICTIONS.jsonl [--metrics perk-em,token-f1,babilong,subem]`;

const FLAGS = [
  "task",
  "length",
  "split",
  "n",
  "seed",
  "position",
  "format",
  "corpus",
  "tokenizer",
  "babi-dir",
  "segment-tokens",
  "out",
  "in",
  "metrics",
] as const;

function integer(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) {
    throw new DataError({ message: `--${flag} must be an integer, got "${v}"` });
  }
  return Number(v);
}

/** Parse argv into a raw spec and output path (types are checked by the schema next). */
export function parseCli(argv: string[]): { spec: Record<string, unknown>; out: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv),
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(FLAGS.map((f) => [f, { type: "string" as const }])),
    });
  } catch (e) {
    throw new DataError({ message: (e as Error).message });
  }
  const v = parsed.values as Record<string, string | undefined>;
  if (parsed.positionals.length !== 1) {
    throw new DataError({ message: "name one dataset: babilong or student-records" });
  }
  for (const f of ["task", "length", "split", "n", "seed", "out"]) {
    if (v[f] === undefined) throw new DataError({ message: `--${f} is required` });
  }
  const oneOf = (what: string, v: string, allowed: readonly string[]) => {
    if (!allowed.includes(v)) {
      throw new DataError({ message: `${what} "${v}": use one of ${allowed.join(", ")}` });
    }
  };
  oneOf("dataset", parsed.positionals[0], DATASETS);
  oneOf(
    "--task",
    v.task!,
    parsed.positionals[0] === "babilong" ? BABI_TASKS : RECORD_TASKS,
  );
  oneOf("--split", v.split!, SPLITS);
  const n = integer("n", v.n)!, seed = integer("seed", v.seed)!;
  if (n < 1) throw new DataError({ message: `--n must be an integer ≥ 1, got ${n}` });
  if (seed < 0) throw new DataError({ message: `--seed must be an integer ≥ 0, got ${seed}` });
  const spec: Record<string, unknown> = {
    dataset: parsed.positionals[0],
    task: v.task,
    length: v.length,
    split: v.split,
    n,
    seed,
    position: v.position,
    format: v.format,
    corpus: v.corpus,
    tokenizer: v.tokenizer,
    babiSource: v["babi-dir"],
    segmentTokens: integer("segment-tokens", v["segment-tokens"]),
  };
  for (const k of Object.keys(spec)) if (spec[k] === undefined) delete spec[k];
  return { spec, out: v.out! };
}

/** `score --in FILE [--metrics a,b]`: mean of each metric as JSON. */
const runScore = (argv: string[]): Effect.Effect<string, DataError> =>
  Effect.gen(function* () {
    const { values } = yield* Effect.try({
      try: () =>
        parseArgs({
          args: joinNegativeValues(argv),
          strict: true,
          options: { in: { type: "string" }, metrics: { type: "string" } },
        }),
      catch: (e) => new DataError({ message: (e as Error).message }),
    });
    if (!values.in) return yield* Effect.fail(new DataError({ message: "--in is required" }));
    const items = yield* Effect.try({
      try: () => readJsonl<ScoredItem>(values.in!),
      catch: (e) => new DataError({ message: (e as Error).message }),
    });
    for (const [i, it] of items.entries()) {
      if (typeof it?.prediction !== "string" || typeof it?.target !== "string") {
        return yield* Effect.fail(
          new DataError({
            message: `${values.in}:${i + 1}: needs string "prediction" and "target" fields`,
          }),
        );
      }
    }
    const metrics = (values.metrics ?? METRICS.join(",")).split(",") as Metric[];
    const report = yield* score({ metrics, items });
    return JSON.stringify({ n: report.n, ...report.mean });
  });

export const runCli = (argv: string[]): Effect.Effect<string, DataError> =>
  argv[0] === "score" ? runScore(argv.slice(1)) : runGenerate(argv);

const runGenerate = (argv: string[]): Effect.Effect<string, DataError> =>
  Effect.gen(function* () {
    const { spec: raw, out } = yield* Effect.try({
      try: () => parseCli(argv),
      catch: (e) => e instanceof DataError ? e : new DataError({ message: String(e) }),
    });
    // Paths typed by the caller are relative to their directory, not the repository's.
    for (const k of ["corpus", "babiSource", "tokenizer"]) {
      const v = raw[k];
      if (typeof v === "string" && looksLikePath(v)) raw[k] = callerPath(v);
    }
    const spec: ProblemSpec = yield* decodeProblemSpec(raw);
    const started = performance.now();
    const problems = yield* buildProblems(spec);
    yield* Effect.try({
      try: () => writeJsonl(callerPath(out), problems),
      catch: (e) => new DataError({ message: `--out ${out}: ${(e as Error).message}` }),
    });
    const secs = ((performance.now() - started) / 1000).toFixed(2);
    return `wrote ${problems.length} problems to ${out} (${secs} s)`;
  });

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const result = await Effect.runPromise(
    runCli(Deno.args).pipe(
      Effect.map((msg) => ({ ok: true as const, msg })),
      Effect.catchTag("DataError", (e) => Effect.succeed({ ok: false as const, msg: e.message })),
    ),
  );
  if (result.ok) console.log(result.msg);
  else {
    console.error(`error: ${result.msg}\n${USAGE}`);
    Deno.exit(2);
  }
}
