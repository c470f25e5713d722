/**
 * One invocation of an experiment: resolve the config, look the compared methods up in the
 * registry, build and plan the graph, then either print it (--dry-run: nothing runs, so no
 * GPU is needed) or run everything and write the run folder (config, env, log, metrics,
 * results.csv/.md, predictions.jsonl, figures). The session's type asks for the services the
 * compared methods' stages need (`R`: `Gpu` for the real methods), besides Progress.
 */
import { Cause, Effect } from "effect";
import { existsSync } from "node:fs";
import type { AdapterRecord } from "../../kernels/runtime/runtime.ts";
import type { MetricRecord, StageCache } from "./cache.ts";
import {
  type Config,
  type ConfigRequest,
  configYaml,
  type Constraint,
  type Fields,
  type Profile,
  resolveConfig,
  type Resolved,
  sweepGrid,
} from "./config.ts";
import { collectEnv } from "./env.ts";
import { errorText, RunDirError } from "./errors.ts";
import {
  buildGraph,
  type ExperimentDef,
  type Graph,
  predictionRecords,
  resultRows,
  sweepPoints,
} from "./experiment.ts";
import { figuresFor } from "./figures.ts";
import { type Plan, plan, reachable } from "./graph.ts";
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { LockOptions } from "./lock.ts";
import { type AnyMethod, configKeys, type MethodRegistry } from "./methods.ts";
import { Progress } from "./progress.ts";
import { ANSWER_KIND_LABELS, ANSWER_KINDS } from "../data/babi_answers.ts";
import { agreements, answerKinds, constantAnswers, predictionsJsonl } from "./predictions.ts";
import {
  constantLabel,
  resultsCsv,
  resultsMarkdown,
  resultsTable,
  type SweptRow,
} from "./report.ts";
import { RunDir, type StageRecord } from "./run_dir.ts";
import { checkForce, explainPlan, runPlan, short } from "./runner.ts";
import { costLine, formatDuration, nodeCost, planCost, type Speed } from "./cost.ts";

/** The GPU adapter as the session reports it. */
export interface AdapterInfo {
  /** One line for the console ("adapter: …"). */
  readonly line: string;
  readonly record: AdapterRecord | null;
  /** A fallback/CPU adapter: the default profile is `cpu` there, `paper` elsewhere. */
  readonly isCpu: boolean;
}

/** `R`: the services the registered methods' stages need. */
export interface SessionOptions<R = never> {
  readonly experiment: ExperimentDef;
  readonly fields: Fields;
  readonly defaults: Readonly<Record<Profile, Config>>;
  /**
   * Measures (or reads the cached) speed of this machine for time estimates; called once the
   * plan is known. Absent: the reference host's figures.
   */
  readonly calibrate?: () => Promise<Speed | undefined>;
  /** Rules between parameters (checked on every sweep point). */
  readonly constraints?: readonly Constraint[];
  readonly registry: MethodRegistry<R>;
  readonly request: Omit<ConfigRequest, "profile"> & { readonly profile?: Profile };
  readonly cache: StageCache;
  readonly runsRoot: string;
  readonly adapter: AdapterInfo;
  readonly force?: ReadonlySet<string>;
  readonly explain?: boolean;
  readonly dryRun?: boolean;
  readonly argv?: readonly string[];
  /** Standard output lines (default console.log). */
  readonly out?: (line: string) => void;
  readonly warn?: (line: string) => void;
  readonly lock?: LockOptions;
}

export type SessionResult =
  | { readonly kind: "dry-run"; readonly resolved: Resolved; readonly plan: Plan }
  | {
    readonly kind: "done";
    readonly resolved: Resolved;
    readonly runDir: string;
    readonly rows: SweptRow[];
    readonly plan: Plan;
  };

const compact = (v: unknown): string => {
  const s = canonicalJson(v);
  return s.length > 110 ? `${s.slice(0, 107)}...` : s;
};

/** Plan lines: one per node (stage, key, params, why it hits/misses). */
const planLines = Effect.fnUntraced(function* (
  p: Plan,
  o: SessionOptions<unknown>,
  speed?: Speed,
) {
  const rows = yield* explainPlan(p, { cache: o.cache, force: o.force });
  const lines = [`plan: ${p.order.length} stage runs`];
  const compute = new Set<string>();
  for (const { planned, why } of rows) {
    const miss = why.startsWith("miss");
    if (miss) compute.add(planned.key);
    const s0 = miss ? nodeCost(p, planned) : undefined;
    const s = s0 === undefined ? undefined : s0 / (speed?.factor ?? 1);
    lines.push(
      `  ${planned.node.stage.name} ${short(planned.key)} ${compact(planned.encodedParams)}`,
      `      ${why}${s === undefined ? "" : ` · ~${formatDuration(s)}`}`,
    );
  }
  lines.push(costLine(p, compute, speed));
  return lines;
});

/** Tasks and methods whose resolved values differ from the experiment's own. */
function changedScope(
  o: SessionOptions<unknown>,
  profile: Profile,
  r: Resolved,
): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const key of ["tasks", "methods"]) {
    const own = o.experiment.overrides?.[profile]?.[key] ?? o.experiment.overrides?.all?.[key] ??
      o.defaults[profile][key];
    const now = r.config[key];
    if (Array.isArray(now) && JSON.stringify(now) !== JSON.stringify(own)) {
      out.push([key, now.map(String)]);
    }
  }
  return out;
}

/** The run's plan as stages.json (see `StageRecord`). */
function stagesJson(p: Plan): string {
  const nodes: StageRecord[] = p.order.map((n) => ({
    stage: n.node.stage.name,
    key: n.key,
    params: n.encodedParams,
    upstream: n.upstream,
  }));
  return JSON.stringify({ nodes }, null, 1) + "\n";
}

/** Each compared method's config keys (its params' fields) with this config's values. */
function methodLines(methods: ReadonlyMap<string, AnyMethod>, r: Resolved): string[] {
  const lines = ["methods (the config keys each reads):"];
  for (const m of methods.values()) {
    const values = configKeys(m).map((k) => {
      const swept = r.sweep[k];
      return `${k}=${swept ? `{${swept.join(",")}}` : JSON.stringify(r.config[k])}`;
    });
    lines.push(`  ${m.name}: ${values.join(" ")}`);
  }
  return lines;
}

/** What a session knows before anything runs. */
interface Prepared<R> {
  readonly out: (line: string) => void;
  readonly profile: Profile;
  readonly resolved: Resolved;
  /** Tasks and methods set by the user (not the experiment's own). */
  readonly changed: [string, string[]][];
  readonly title: string;
  readonly methods: ReadonlyMap<string, AnyMethod<R>>;
  readonly graph: Graph<R>;
  readonly plan: Plan<R>;
  readonly speed: Speed | undefined;
}

/** Resolve the config and the methods, build and plan the graph (nothing runs). */
const prepare = <R>(o: SessionOptions<R>) =>
  Effect.gen(function* () {
    const out = o.out ?? ((line: string) => console.log(line));
    out(o.adapter.line);
    const profile: Profile = o.request.profile ?? (o.adapter.isCpu ? "cpu" : "paper");
    const resolved = yield* resolveConfig(o.fields, {
      defaults: o.defaults,
      constraints: o.constraints,
      overrides: o.experiment.overrides,
      sweep: o.experiment.sweep,
    }, { ...o.request, profile });
    // Tasks or methods set by the user make a different experiment than the title says.
    const changed = changedScope(o, profile, resolved);
    const title = changed.length
      ? `${o.experiment.title} (as run: ${
        changed.map(([k, v]) => `${k} ${v.join(", ")}`).join("; ")
      })`
      : o.experiment.title;
    out(
      `experiment ${o.experiment.name} (profile ${profile}${
        Object.keys(resolved.sweep).length
          ? `, ${sweepGrid(resolved.sweep).length} sweep points`
          : ""
      }): ${title}`,
    );

    const points = yield* sweepPoints(resolved);
    const methods = new Map<string, AnyMethod<R>>();
    for (const name of new Set(points.flatMap((pt) => pt.core.methods))) {
      methods.set(name, yield* o.registry.resolve(name));
    }
    const graph = yield* buildGraph(points, methods);
    const p = yield* plan(graph.targets);
    yield* checkForce(p, o.force);
    const calibrate = o.calibrate;
    const speed = calibrate ? yield* Effect.promise(() => calibrate()) : undefined;
    const prepared: Prepared<R> = {
      out,
      profile,
      resolved,
      changed,
      title,
      methods,
      graph,
      plan: p,
      speed,
    };
    return prepared;
  });

/** The resolved config, the plan (why each stage hits or misses) and each method's keys. */
const printPlan = <R>(o: SessionOptions<R>, s: Prepared<R>) =>
  Effect.gen(function* () {
    s.out("resolved config:");
    s.out(configYaml(o.experiment.name, s.resolved).trimEnd().replace(/^/gm, "  "));
    for (const line of yield* planLines(s.plan, o, s.speed)) s.out(line);
    for (const line of methodLines(s.methods, s.resolved)) s.out(line);
    const result: SessionResult = { kind: "dry-run", resolved: s.resolved, plan: s.plan };
    return result;
  });

/**
 * `--dry-run`: prints the resolved config and the plan, runs nothing — so it needs none of
 * the methods' services (the CLI uses it when there is no GPU adapter).
 */
export const dryRunSession = <R>(o: SessionOptions<R>) =>
  Effect.flatMap(prepare(o), (s) => printPlan(o, s));

/** The whole session (`o.dryRun`: as dryRunSession). */
export const runSession = <R>(o: SessionOptions<R>) =>
  Effect.gen(function* () {
    const s = yield* prepare(o);
    if (o.dryRun) return yield* printPlan(o, s);
    const { out, profile, resolved, changed, title, graph, plan: p, speed } = s;
    const progress = yield* Progress;
    const runOptions = {
      cache: o.cache,
      force: o.force,
      warn: o.warn,
      lock: o.lock,
      explain: o.explain ? (line: string) => progress.line(`explain ${line}`) : undefined,
    };

    const runKey = yield* Effect.promise(() =>
      sha256Hex(canonicalJson({ experiment: o.experiment.name, ...resolved }))
    );
    const io = <A>(what: string, fn: () => Promise<A> | A) =>
      Effect.tryPromise({
        try: async () => await fn(),
        catch: (e) => new RunDirError({ message: `${what}: ${errorText(e)}` }),
      });
    const dir = yield* io(
      "creating the run folder",
      () =>
        RunDir.create(
          o.runsRoot,
          o.experiment.name,
          runKey,
          changed.flatMap(([, v]) => v).join("-"),
        ),
    );
    out(`run folder: ${dir.path}`);
    // Which stages will compute: forced, or without a cache entry (the runner verifies the
    // entries it reads; a corrupt one is recomputed beyond this estimate).
    const computing = new Set(
      p.order.filter((n) =>
        (o.force?.has(n.node.stage.name) ?? false) || !existsSync(o.cache.entryPath(n.key))
      ).map((n) => n.key),
    );
    const estimate = costLine(p, computing, speed);
    out(estimate);
    dir.log(estimate);
    if (planCost(p, computing).seconds / (speed?.factor ?? 1) > 3600) {
      progress.line(
        "warning: this run is estimated at over an hour; Ctrl-C stops it (finished stages stay " +
          "cached), --dry-run shows each stage's share",
      );
    }
    yield* io(
      "writing config.yaml",
      () => dir.write("config.yaml", configYaml(o.experiment.name, resolved)),
    );
    // Every node's stage, key, parameters and upstream keys: what `ask` and `export` read to
    // find this run's meta-parameters in the cache, whatever the code has become since.
    yield* io("writing stages.json", () => dir.write("stages.json", stagesJson(p)));
    const env = yield* Effect.promise(() => collectEnv(o.adapter.record, o.argv ?? []));
    yield* io("writing env.json", () => dir.write("env.json", JSON.stringify(env, null, 2) + "\n"));
    if (env.git.dirty) {
      progress.line("note: the git working tree has uncommitted changes (env.json)");
    }

    const metrics: MetricRecord[] = [];
    const logged = {
      update: progress.update,
      line: (text: string) => {
        progress.line(text);
        dir.log(text);
      },
    };
    const run = yield* runPlan(p, {
      ...runOptions,
      metric: (record) => {
        metrics.push(record);
        dir.metric(record);
      },
      log: (line) => dir.log(line),
    }).pipe(
      Effect.provideService(Progress, logged),
      // A failed or stopped run says so in its folder: FAILED holds the reason, and log.txt
      // ends with it (finished stages stay cached, so a rerun resumes).
      Effect.onError((cause) =>
        Effect.sync(() => {
          const why = Cause.hasInterruptsOnly(cause)
            ? "interrupted (Ctrl-C); finished stages stay cached, rerun to resume"
            : errorText(Cause.squash(cause));
          dir.log(`FAILED: ${why}`);
          Deno.writeTextFileSync(`${dir.path}/FAILED`, `${why}\n`);
        })
      ),
    );

    const rows = resultRows(graph.cells, run.results);
    const swept = Object.keys(resolved.sweep);
    // Metric records by sweep point, for figures of swept training quantities.
    const byPoint = new Map<string, MetricRecord[]>();
    for (const c of graph.cells) {
      const keys = new Set([...reachable(p, p.targetKeys[c.target])].map(short));
      const k = JSON.stringify(c.point);
      const list = byPoint.get(k) ?? [];
      for (const m of metrics) if (keys.has(String(m.key)) && !list.includes(m)) list.push(m);
      byPoint.set(k, list);
    }
    const records = predictionRecords(graph.cells, run.results);
    const constants = constantAnswers(records);
    const figures = figuresFor(rows, swept, metrics, byPoint, constants);
    for (const fig of figures) yield* io(`writing ${fig.file}`, () => dir.write(fig.file, fig.svg));
    yield* io(
      "writing predictions.jsonl",
      () => dir.write("predictions.jsonl", predictionsJsonl(records)),
    );
    yield* io("writing results.csv", () => dir.write("results.csv", resultsCsv(rows, swept)));
    yield* io("writing results.md", () =>
      dir.write(
        "results.md",
        resultsMarkdown(
          `${o.experiment.name}: ${title} (profile ${profile})`,
          rows,
          swept,
          figures.map((f) => f.file),
          o.experiment.note ?? "",
          records,
        ),
      ));
    out("");
    out(resultsTable(rows, swept));
    for (const c of constants) {
      out(`best constant answer, ${c.task} @ ${c.test_length}: ${constantLabel(c)}`);
    }
    for (const k of answerKinds(records)) {
      const parts = ANSWER_KINDS.filter((kind) => k.counts[kind] > 0)
        .map((kind) => `${ANSWER_KIND_LABELS[kind]} ${k.counts[kind]}`);
      out(`${k.method} answers (n = ${k.n}): ${parts.join(", ")}`);
    }
    for (const a of agreements(records)) {
      out(`${a.method}: same answer as ${a.reference} on ${a.same} of ${a.n}`);
    }
    if (o.experiment.note) out(o.experiment.note);
    out(`\nresults: ${dir.path}/results.md (csv: ${dir.path}/results.csv)`);
    const done: SessionResult = { kind: "done", resolved, runDir: dir.path, rows, plan: p };
    return done;
  });
