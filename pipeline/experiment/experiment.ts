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

export interface Graph<R = unknown> {
  /** Target name → score node; `R`: the services the compared methods' stages need. */
  readonly targets: Record<string, Node<unknown, R>>;
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

/** One cell of the grid with its problem nodes, before any method. */
interface GridCell {
  /** `<sweep point index>|<task>|<train length>|<test length>`. */
  readonly name: string;
  readonly pointIndex: number;
  readonly point: Readonly<Record<string, unknown>>;
  /** The sweep point's config. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly core: CoreConfig;
  readonly cell: Cell;
}

/** Every cell of the grid with its problem nodes; the tasks and the bAbI folder checked. */
const gridCells = (r: Resolved): Effect.Effect<GridCell[], ConfigError> =>
  Effect.gen(function* () {
    const out: GridCell[] = [];
    for (const [pointIndex, point] of sweepGrid(r.sweep).entries()) {
      const config = pointConfig(r, point);
      const c = config as unknown as CoreConfig;
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
              name: `${pointIndex}|${task}|${trainLength}|${testLength}`,
              pointIndex,
              point,
              config,
              core: c,
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
  Effect.map(gridCells(r), (cells) => {
    const out: Record<string, Node<Problem[], never>> = {};
    for (const g of cells) {
      out[`${g.name}|train`] = g.cell.train;
      out[`${g.name}|validation`] = g.cell.validation;
      out[`${g.name}|test`] = g.cell.test;
    }
    return out;
  });

/** Build the graph. `methods`: every method the config compares, by name. */
export const buildGraph = <R>(
  r: Resolved,
  methods: ReadonlyMap<string, AnyMethod<R>>,
): Effect.Effect<Graph<R>, ConfigError> =>
  Effect.gen(function* () {
    const targets: Record<string, Node<unknown, R>> = {};
    const cells: CellTarget[] = [];
    // Each method's parameters, once per sweep point.
    const params = new Map<string, unknown>();
    for (const g of yield* gridCells(r)) {
      const { task, trainLength, testLength } = g.cell;
      for (const m of g.core.methods) {
        const method = methodOf(methods, m);
        const at = `${g.pointIndex}|${m}`;
        if (!params.has(at)) params.set(at, yield* methodParams(method, g.config));
        const target = `${g.name}|${m}`;
        targets[target] = node(scoreStage, { metric: g.core.metric as never }, {
          problems: g.cell.test,
          predictions: method.predictions(g.cell, params.get(at)),
        });
        cells.push({ target, point: g.point, method: m, task, trainLength, testLength });
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
