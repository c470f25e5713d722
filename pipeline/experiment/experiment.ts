/**
 * An experiment = a name, a title, its layers over the shared defaults (experiments/
 * defaults.ts) and an optional default sweep. Its graph is built from the resolved config:
 * for every sweep point × task × train length × test length, three `build-problems` nodes
 * (train / validation at the train length, test at the test length), each method's
 * prediction node, and a `score` node per method.
 */
import { Effect } from "effect";
import type { ProblemSpec } from "../data/problems.ts";
import { BABI_TASKS } from "../data/babi_world.ts";
import { resolveBabiSource, SIMULATOR } from "./babi_source.ts";
import { RECORD_TASKS } from "../data/student_records.ts";
import { type ConfigBase, type Resolved, sweepGrid } from "./config.ts";
import { problemsStage, scoreStage, type ScoreSummary } from "./data_stages.ts";
import { ConfigError } from "./errors.ts";
import type { CoreConfig } from "./fields.ts";
import { type Node, node } from "./graph.ts";
import { type AnyMethod, type Cell, methodParams } from "./methods.ts";
import type { PredictionRecord } from "./predictions.ts";
import type { SweptRow } from "./report.ts";

export interface ExperimentDef {
  readonly name: string;
  readonly title: string;
  /** What it shows and which paper table/figure it reproduces. */
  readonly description: string;
  readonly overrides?: ConfigBase["overrides"];
  readonly sweep?: ConfigBase["sweep"];
  /** A note printed under the results table (e.g. what the cpu profile scales down). */
  readonly note?: string;
}

/** Identity with a name check (names are folder names under runs/). */
export function defineExperiment(def: ExperimentDef): ExperimentDef {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(def.name)) {
    throw new Error(`experiment name "${def.name}": use lower-case letters, digits and dashes`);
  }
  return def;
}

/** One scored cell of the grid. */
export interface CellTarget {
  readonly target: string;
  readonly point: Readonly<Record<string, unknown>>;
  readonly method: string;
  readonly task: string;
  readonly trainLength: string;
  readonly testLength: string;
}

export interface Graph {
  /** Target name → node (score nodes; data nodes too when `dataOnly`). */
  readonly targets: Record<string, Node>;
  readonly cells: CellTarget[];
}

/** The config of one sweep point. */
export const pointConfig = (r: Resolved, point: Readonly<Record<string, unknown>>) =>
  ({ ...r.config, ...point }) as Readonly<Record<string, unknown>>;

function problemSpec(
  c: CoreConfig,
  task: string,
  length: string,
  split: "train" | "validation" | "test",
  n: number,
  position: string,
): ProblemSpec {
  return {
    dataset: c.dataset,
    task: task as ProblemSpec["task"],
    length,
    split,
    n,
    seed: c.seed,
    position: position as ProblemSpec["position"],
    tokenizer: c.tokenizer,
    segmentTokens: c.segment_tokens,
    // Left out for the simulator (the data layer's default), so its cache keys stay as they were.
    ...(c.babi_source === SIMULATOR ? {} : { babiSource: c.babi_source }),
  };
}

/**
 * Build the graph. `methods` are the available methods by name; with `dataOnly` the graph
 * stops at the data nodes (used while a compared method is not available yet).
 */
export const buildGraph = Effect.fnUntraced(function* (
  r: Resolved,
  methods: ReadonlyMap<string, AnyMethod>,
  { dataOnly = false } = {},
) {
  const targets: Record<string, Node> = {};
  const cells: CellTarget[] = [];
  const points = sweepGrid(r.sweep);
  for (const [pi, point] of points.entries()) {
    const cfg = pointConfig(r, point);
    const c = cfg as unknown as CoreConfig;
    const allowed: readonly string[] = c.dataset === "babilong" ? BABI_TASKS : RECORD_TASKS;
    for (const t of c.tasks) {
      if (!allowed.includes(t)) {
        return yield* new ConfigError({
          message: `parameter "tasks": ${t} is not a ${c.dataset} task; allowed: ${
            allowed.join(", ")
          }`,
        });
      }
    }
    // The released bAbI folder, checked and made absolute before any stage runs.
    const spec: CoreConfig = { ...c, babi_source: yield* resolveBabiSource(c) };
    const params = new Map<string, unknown>();
    if (!dataOnly) {
      for (const m of c.methods) params.set(m, yield* methodParams(methods.get(m)!, cfg));
    }
    for (const task of c.tasks) {
      for (const trainLength of c.train_lengths) {
        const train = node(
          problemsStage,
          problemSpec(spec, task, trainLength, "train", c.n_train, c.train_position),
        );
        const validation = node(
          problemsStage,
          problemSpec(spec, task, trainLength, "validation", c.n_validation, c.train_position),
        );
        for (const testLength of c.test_lengths) {
          const test = node(
            problemsStage,
            problemSpec(spec, task, testLength, "test", c.n_test, c.test_position),
          );
          const base = `${pi}|${task}|${trainLength}|${testLength}`;
          if (dataOnly) {
            Object.assign(targets, {
              [`${base}|train`]: train,
              [`${base}|validation`]: validation,
              [`${base}|test`]: test,
            });
            continue;
          }
          const cell: Cell = {
            dataset: c.dataset,
            task,
            trainLength,
            testLength,
            trainPosition: c.train_position,
            testPosition: c.test_position,
            train,
            validation,
            test,
          };
          for (const m of c.methods) {
            const target = `${base}|${m}`;
            const predictions = methods.get(m)!.predictions(cell, params.get(m));
            targets[target] = node(scoreStage, { metric: c.metric as never }, {
              problems: test,
              predictions,
            });
            cells.push({ target, point, method: m, task, trainLength, testLength });
          }
        }
      }
    }
  }
  return { targets, cells } as Graph;
});

/** Result rows from the score outputs of a run. */
export function resultRows(
  cells: readonly CellTarget[],
  results: Readonly<Record<string, unknown>>,
): SweptRow[] {
  return cells.map((c) => {
    const s = results[c.target] as ScoreSummary;
    return {
      method: c.method,
      task: c.task,
      train_length: c.trainLength,
      test_length: c.testLength,
      n: s.n,
      correct: s.correct,
      ms_per_problem: s.ms_per_problem,
      peak_bytes: s.peak_bytes,
      sweep: c.point,
    };
  });
}

/**
 * Every scored test problem of a run, cell by cell in the order of the results table; the
 * sweep point rides along only in swept runs.
 */
export function predictionRecords(
  cells: readonly CellTarget[],
  results: Readonly<Record<string, unknown>>,
): PredictionRecord[] {
  return cells.flatMap((c) => {
    const s = results[c.target] as ScoreSummary;
    const swept = Object.keys(c.point).length > 0;
    return s.perProblem.map((p) => ({
      method: c.method,
      task: c.task,
      train_length: c.trainLength,
      test_length: c.testLength,
      id: p.id,
      question: p.question,
      target: p.target,
      prediction: p.prediction,
      correct: p.score,
      ms: p.ms,
      ...(swept ? { sweep: c.point } : {}),
    }));
  });
}
