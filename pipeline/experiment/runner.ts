/**
 * Runs a planned graph: upstream first, taking verified hits from the cache and computing
 * misses. Each miss is written to the cache as soon as it finishes, so an interrupted run
 * loses only the stage that was running (which can resume from its scratch folder), and a
 * per-key lock makes a concurrent run of the same experiment wait for, then reuse, it.
 */
import { Effect } from "effect";
import type { Lookup, MetricRecord, StageCache } from "./cache.ts";
import { CacheError, ConfigError, errorText, StageError } from "./errors.ts";
import { explainNode } from "./explain.ts";
import { type Node, type Plan, plan, type PlannedNode } from "./graph.ts";
import { type LockOptions, lockOrWait } from "./lock.ts";
import { Progress } from "./progress.ts";
import { jsonCodec } from "./stage.ts";

export interface RunOptions {
  readonly cache: StageCache;
  /** Stage names to recompute even when cached (--force). */
  readonly force?: ReadonlySet<string>;
  /** Receives one "hit/miss: why" line per node (--explain). */
  readonly explain?: (line: string) => void;
  /** Warnings (corrupt entries, waiting on another run). Default: console.warn. */
  readonly warn?: (line: string) => void;
  /** Metric records of every node: computed now, or replayed from the cache (`cached`). */
  readonly metric?: (record: MetricRecord) => void;
  /** Lines for the run's log. */
  readonly log?: (line: string) => void;
  readonly lock?: LockOptions;
}

/** Per-node record of a run. */
export interface NodeReport {
  readonly key: string;
  readonly stage: string;
  /** "hit", "computed", or "shared" (another run computed it while we waited). */
  readonly status: "hit" | "computed" | "shared";
  readonly ms: number;
}

export interface RunResult<R = unknown> {
  /** Target name → output. */
  readonly results: Record<string, unknown>;
  readonly reports: NodeReport[];
  readonly plan: Plan<R>;
}

/** What running a graph can fail with (a stage's own error arrives as a StageError). */
export type RunError = ConfigError | CacheError | StageError;

export const short = (key: string): string => key.slice(0, 12);

const cacheIo = <A>(what: string, fn: () => Promise<A>) =>
  Effect.tryPromise({
    try: fn,
    catch: (e) => new CacheError({ message: `${what}: ${errorText(e)}` }),
  });

/** Fail early on --force names that are not stages of the graph. */
export function checkForce(p: Plan, force: ReadonlySet<string> | undefined) {
  const names = [...new Set(p.order.map((n) => n.node.stage.name))];
  for (const f of force ?? []) {
    if (!names.includes(f)) {
      return Effect.fail(
        new ConfigError({
          message: `--force ${f}: no such stage in this graph; stages: ${names.join(", ")}`,
        }),
      );
    }
  }
  return Effect.void;
}

/** Why each node will hit or miss, without running anything (--dry-run). */
export const explainPlan = Effect.fnUntraced(function* (p: Plan, options: RunOptions) {
  const rows: { planned: PlannedNode; why: string }[] = [];
  for (const planned of p.order) {
    const lookup = yield* cacheIo("reading cache", () => options.cache.lookup(planned.key));
    const forced = options.force?.has(planned.node.stage.name) ?? false;
    const why = yield* cacheIo(
      "reading cache",
      () => explainNode(options.cache, planned, lookup, forced),
    );
    rows.push({ planned, why });
  }
  return rows;
});

/**
 * Run every node reachable from `targets`; returns the targets' outputs. Needs the services
 * `R` the graph's stages ask for (e.g. `Gpu`), and Progress.
 */
export const runGraph = <R>(
  targets: Readonly<Record<string, Node<unknown, R>>>,
  options: RunOptions,
): Effect.Effect<RunResult<R>, RunError, R | Progress> =>
  Effect.flatMap(plan(targets), (planned) => runPlan(planned, options));

/** Run an already planned graph. */
export const runPlan = <R>(
  p: Plan<R>,
  options: RunOptions,
): Effect.Effect<RunResult<R>, RunError, R | Progress> =>
  Effect.gen(function* () {
    yield* checkForce(p, options.force);
    const progress = yield* Progress;
    const outputs = new Map<string, unknown>();
    const reports: NodeReport[] = [];
    const warn = options.warn ?? ((line: string) => console.warn(line));
    const cache = options.cache;
    for (const [i, pn] of p.order.entries()) {
      const stage = pn.node.stage;
      const codec = stage.codec ?? jsonCodec();
      const label = `[${i + 1}/${p.order.length}] ${stage.name} ${short(pn.key)}`;
      const forced = options.force?.has(stage.name) ?? false;
      const replay = (metrics: MetricRecord[]) => {
        for (const m of metrics) {
          options.metric?.({ ...m, stage: stage.name, key: short(pn.key), cached: true });
        }
      };
      const take = (lookup: Lookup & { status: "hit" }, status: NodeReport["status"]) =>
        Effect.try({
          try: () => {
            outputs.set(pn.key, codec.decode(lookup.encoded));
            replay(lookup.metrics);
            reports.push({ key: pn.key, stage: stage.name, status, ms: 0 });
          },
          catch: (e) =>
            new StageError({
              stage: stage.name,
              message: `decoding cached output ${short(pn.key)}: ${errorText(e)}; ` +
                `rerun with --force ${stage.name}`,
            }),
        });

      const lookup = yield* cacheIo("reading cache", () => cache.lookup(pn.key));
      if (options.explain) {
        const why = yield* cacheIo("reading cache", () => explainNode(cache, pn, lookup, forced));
        options.explain(`${label}: ${why}`);
      }
      if (lookup.status === "corrupt") {
        warn(
          `warning: cache entry of ${stage.name} ${short(pn.key)} is corrupt (${lookup.reason}); ` +
            "recomputing",
        );
      }
      if (lookup.status === "hit" && !forced) {
        progress.line(`${label}: cached`);
        yield* take(lookup, "hit");
        continue;
      }

      // A miss: take the key's lock, or wait for the run that holds it.
      const t0 = Date.now();
      const isDone = async () => {
        if (!forced) return (await cache.lookup(pn.key)).status === "hit";
        const stat = await Deno.stat(cache.entryPath(pn.key)).catch(() => undefined);
        return (stat?.mtime?.getTime() ?? 0) >= t0;
      };
      const outcome = yield* Effect.tryPromise({
        try: (signal) =>
          lockOrWait(cache, pn.key, isDone, {
            ...options.lock,
            signal,
            onWait: (pid) =>
              progress.line(`${label}: waiting for run ${pid ?? "?"}, which computes it`),
          }),
        catch: (e) => new CacheError({ message: `locking ${short(pn.key)}: ${errorText(e)}` }),
      });
      if (outcome.kind === "done") {
        const again = yield* cacheIo("reading cache", () => cache.lookup(pn.key));
        if (again.status === "hit") {
          progress.line(`${label}: computed by another run`);
          yield* take(again, "shared");
          continue;
        }
      }
      const release = outcome.kind === "acquired" ? outcome.release : () => Promise.resolve();
      yield* Effect.acquireUseRelease(
        Effect.void,
        () =>
          Effect.gen(function* () {
            if (!forced) {
              // Another run may have finished it between our lookup and our lock.
              const again = yield* cacheIo("reading cache", () => cache.lookup(pn.key));
              if (again.status === "hit") {
                progress.line(`${label}: computed by another run`);
                return yield* take(again, "shared");
              }
            }
            const inputs: Record<string, unknown> = {};
            for (const [name, key] of Object.entries(pn.upstream)) inputs[name] = outputs.get(key);
            const scratch = yield* cacheIo("creating scratch folder", () => cache.scratch(pn.key));
            const metrics: MetricRecord[] = [];
            const started = performance.now();
            progress.line(`${label}: running`);
            const ctx = {
              key: pn.key,
              scratch,
              progress: (done: number, total: number) => progress.update(stage.name, done, total),
              metric: (record: MetricRecord) => {
                metrics.push(record);
                options.metric?.({ ...record, stage: stage.name, key: short(pn.key) });
              },
              log: (line: string) => options.log?.(`${stage.name}: ${line}`),
            };
            const store = (output: unknown) =>
              Effect.gen(function* () {
                const encoded = yield* Effect.try({
                  try: () => codec.encode(output),
                  catch: (e) =>
                    new StageError({
                      stage: stage.name,
                      message: `encoding output: ${errorText(e)}`,
                    }),
                });
                yield* cacheIo("writing cache entry", () =>
                  cache.write(
                    {
                      key: pn.key,
                      stage: stage.name,
                      version: stage.version,
                      params: pn.encodedParams,
                      upstream: pn.upstream,
                      kernels: pn.kernels,
                    },
                    encoded,
                    metrics,
                  ));
                yield* cacheIo("clearing scratch", () => cache.clearScratch(pn.key));
                // Downstream stages see exactly what a later cache hit would give them.
                outputs.set(pn.key, codec.decode(encoded));
              });
            // The stage itself is interruptible; once it has returned, its output is stored
            // before an interrupt takes effect (finished work is never thrown away).
            yield* Effect.uninterruptibleMask((restore) =>
              restore(
                stage.run(pn.params, inputs, ctx).pipe(
                  Effect.mapError((e) =>
                    new StageError({ stage: stage.name, message: errorText(e) })
                  ),
                ),
              ).pipe(Effect.flatMap(store))
            );
            const ms = performance.now() - started;
            progress.line(`${label}: done in ${(ms / 1000).toFixed(1)} s`);
            reports.push({ key: pn.key, stage: stage.name, status: "computed", ms });
          }),
        () => Effect.promise(release),
      );
    }
    const results: Record<string, unknown> = {};
    for (const [name, key] of Object.entries(p.targetKeys)) results[name] = outputs.get(key);
    const run: RunResult<R> = { results, reports, plan: p };
    return run;
  });
