/**
 * An experiment = a name, a title, its layers over the shared defaults (experiments/
 * defaults.ts) and an optional default sweep. Its graph is built from the resolved config:
 * for every sweep point × task × train length × test length, three `build-problems` nodes
 * (train / validation at the train length, test at the test length), each method's
 * prediction node, and a `score` node per method.
 */
import { Effect } from "effect";
import type { Problem, ProblemSpec } from "../data/problems.ts";
import { BABI_TASKS } from "../data/babi_world.ts";
import { resolveBabiSource, SIMULATOR } from "./babi_source.ts";
import { RECORD_TASKS, type Split } from "../data/student_records.ts";
import { type Config, type ConfigBase, type Resolved, sweepGrid } from "./config.ts";
import { problemsStage, scoreStage, type ScoreSummary } from "./data_stages.ts";
import { ConfigError } from "./errors.ts";
import { type CoreConfig, decodeCore } from "./fields.ts";
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

export interface Graph<R = unknown> {
  /** Target name → score node; `R`: the services the compared methods' stages need. */
  readonly targets: Record<string, Node<unknown, R>>;
  readonly cells: CellTarget[];
}

/** One point of the sweep grid (the only one when nothing is swept). */
export interface SweepPoint {
  readonly index: number;
  /** The swept keys' values at this point. */
  readonly values: Readonly<Record<string, unknown>>;
  /** The whole config at this point (methods read their keys from it). */
  readonly config: Config;
  /** Its core keys, decoded once (fields.ts). */
  readonly core: CoreConfig;
}

/** Every point of the resolved config's sweep grid, its core keys decoded. */
export const sweepPoints = (r: Resolved): Effect.Effect<SweepPoint[], ConfigError> =>
  Effect.forEach(sweepGrid(r.sweep), (values, index) => {
    const config: Config = { ...r.config, ...values };
    return Effect.map(decodeCore(config), (core) => ({ index, values, config, core }));
  });

function problemSpec(
  c: CoreConfig,
  task: CoreConfig["tasks"][number],
  length: string,
  split: Split,
  n: number,
  position: CoreConfig["train_position"],
): ProblemSpec {
  return {
    dataset: c.dataset,
    task,
    length,
    split,
    n,
    seed: c.seed,
    position,
    tokenizer: c.tokenizer,
    segmentTokens: c.segment_tokens,
    // Left out for the simulator (the data layer's default), so its cache keys stay as they were.
    ...(c.babi_source === SIMULATOR ? {} : { babiSource: c.babi_source }),
  };
}

/** One cell of the grid with its problem nodes, before any method. */
interface GridCell {
  /** `<sweep point index>|<task>|<train length>|<test length>`. */
  readonly name: string;
  readonly point: SweepPoint;
  readonly cell: Cell;
}

/** Every cell of the grid with its problem nodes; the tasks and the bAbI folder checked. */
const gridCells = (points: readonly SweepPoint[]): Effect.Effect<GridCell[], ConfigError> =>
  Effect.gen(function* () {
    const out: GridCell[] = [];
    for (const point of points) {
      const c = point.core;
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
            out.push({
              name: `${point.index}|${task}|${trainLength}|${testLength}`,
              point,
              cell: {
                dataset: c.dataset,
                task,
                trainLength,
                testLength,
                trainPosition: c.train_position,
                testPosition: c.test_position,
                train,
                validation,
                test,
              },
            });
          }
        }
      }
    }
    return out;
  });

/**
 * The problem nodes of every cell, named `<cell>|train`, `<cell>|validation` and `<cell>|test`
 * (for tools and tests that look at the data alone).
 */
export const dataNodes = (
  r: Resolved,
): Effect.Effect<Record<string, Node<Problem[], never>>, ConfigError> =>
  Effect.map(Effect.flatMap(sweepPoints(r), gridCells), (cells) => {
    const out: Record<string, Node<Problem[], never>> = {};
    for (const g of cells) {
      out[`${g.name}|train`] = g.cell.train;
      out[`${g.name}|validation`] = g.cell.validation;
      out[`${g.name}|test`] = g.cell.test;
    }
    return out;
  });

/**
 * Build the graph of the sweep's points (`sweepPoints`). `methods`: every method the config
 * compares, by name.
 */
export const buildGraph = <R>(
  points: readonly SweepPoint[],
  methods: ReadonlyMap<string, AnyMethod<R>>,
): Effect.Effect<Graph<R>, ConfigError> =>
  Effect.gen(function* () {
    const targets: Record<string, Node<unknown, R>> = {};
    const cells: CellTarget[] = [];
    // Each method's parameters, once per sweep point.
    const params = new Map<string, unknown>();
    for (const g of yield* gridCells(points)) {
      const { task, trainLength, testLength } = g.cell;
      for (const m of g.point.core.methods) {
        const method = methodOf(methods, m);
        const at = `${g.point.index}|${m}`;
        if (!params.has(at)) params.set(at, yield* methodParams(method, g.point.config));
        const target = `${g.name}|${m}`;
        targets[target] = node(scoreStage, { metric: g.point.core.metric }, {
          problems: g.cell.test,
          predictions: method.predictions(g.cell, params.get(at)),
        });
        cells.push({ target, point: g.point.values, method: m, task, trainLength, testLength });
      }
    }
    const graph: Graph<R> = { targets, cells };
    return graph;
  });

/** A compared method; the session resolves each one before building (a bug otherwise). */
function methodOf<R>(methods: ReadonlyMap<string, AnyMethod<R>>, name: string): AnyMethod<R> {
  const m = methods.get(name);
  if (!m) throw new Error(`buildGraph: method ${name} was not resolved`);
  return m;
}

/** The columns naming a cell in results.csv and predictions.jsonl. */
const cellColumns = (c: CellTarget) => ({
  method: c.method,
  task: c.task,
  train_length: c.trainLength,
  test_length: c.testLength,
});

/** A cell's score: the output of its target, a `score` node (the runner's results are untyped). */
const summaryOf = (c: CellTarget, results: Readonly<Record<string, unknown>>) =>
  results[c.target] as ScoreSummary;

/** Result rows from the score outputs of a run. */
export function resultRows(
  cells: readonly CellTarget[],
  results: Readonly<Record<string, unknown>>,
): SweptRow[] {
  return cells.map((c) => {
    const s = summaryOf(c, results);
    return {
      ...cellColumns(c),
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
    const swept = Object.keys(c.point).length > 0;
    return summaryOf(c, results).perProblem.map((p) => ({
      ...cellColumns(c),
      id: p.id,
      question: p.question,
      target: p.target,
      prediction: p.prediction,
      correct: p.score,
      ms: p.ms,
      ...(p.kind ? { answer_kind: p.kind } : {}),
      ...(swept ? { sweep: c.point } : {}),
    }));
  });
}
