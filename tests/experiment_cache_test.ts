/**
 * The stage cache and runner on toy stages that count their executions: hits and misses,
 * --explain, --force, corrupt entries, interrupt + resume, concurrent runs (in-process and
 * two subprocesses), a SIGKILLed run, and sharing of equal nodes.
 */
import assert from "node:assert/strict";
import { Deferred, Effect, Exit, Fiber, Schema } from "effect";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { type Node, node } from "../pipeline/experiment/graph.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { runGraph, type RunOptions } from "../pipeline/experiment/runner.ts";
import { defineStage } from "../pipeline/experiment/stage.ts";
import { slowSource, toyGraph } from "./experiment_toy_child.ts";

const counts = new Map<string, number>();
const bump = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
const count = (name: string) => counts.get(name) ?? 0;

/** Stage "src": a list of n numbers; stage "sum": their sum times k. Both count runs. */
function toys(prefix: string) {
  const src = defineStage({
    name: `${prefix}-src`,
    version: 1,
    params: Schema.Struct({ n: Schema.Int }),
    run: (p, _i: Record<string, never>, ctx) =>
      Effect.sync(() => {
        bump(`${prefix}-src`);
        ctx.metric({ step: 1, loss: 0.5 });
        return Array.from({ length: p.n }, (_, i) => i + 1);
      }),
  });
  const sum = defineStage({
    name: `${prefix}-sum`,
    version: 1,
    params: Schema.Struct({ k: Schema.Number }),
    run: (p, inputs: { xs: number[] }) =>
      Effect.sync(() => {
        bump(`${prefix}-sum`);
        return inputs.xs.reduce((a, b) => a + b, 0) * p.k;
      }),
  });
  const graph = (n: number, k: number) => ({ out: node(sum, { k }, { xs: node(src, { n }) }) });
  return { src, sum, graph };
}

// Toy stages need no services (Node<unknown, never>).
const run = (targets: Record<string, Node<unknown, never>>, options: RunOptions) =>
  Effect.runPromise(
    runGraph(targets, options).pipe(Effect.provideService(Progress, memoryProgress())),
  );

/** Every lock file in `dir` can be taken now (nobody holds it). */
async function lockIsFree(dir: string): Promise<boolean> {
  for (const e of Deno.readDirSync(dir)) {
    const f = await Deno.open(`${dir}/${e.name}`, { read: true, write: true });
    try {
      if (!(await f.tryLock(true))) return false;
      await f.unlock();
    } finally {
      f.close();
    }
  }
  return true;
}

async function tempCache(): Promise<StageCache> {
  return new StageCache(await Deno.makeTempDir({ prefix: "perk-cache-" }));
}

Deno.test("experiment cache: miss computes, hit reuses, a changed parameter recomputes only its stage", async () => {
  const cache = await tempCache();
  const t = toys("hm");
  const r1 = await run(t.graph(4, 2), { cache });
  assert.equal(r1.results.out, 20);
  assert.deepEqual([count("hm-src"), count("hm-sum")], [1, 1]);
  assert.deepEqual(r1.reports.map((r) => r.status), ["computed", "computed"]);
  const r2 = await run(t.graph(4, 2), { cache });
  assert.equal(r2.results.out, 20);
  assert.deepEqual([count("hm-src"), count("hm-sum")], [1, 1]);
  assert.deepEqual(r2.reports.map((r) => r.status), ["hit", "hit"]);
  const r3 = await run(t.graph(4, 3), { cache });
  assert.equal(r3.results.out, 30);
  assert.deepEqual([count("hm-src"), count("hm-sum")], [1, 2]);
  // Metrics recorded while computing are replayed from the cache on a hit.
  const metrics: Record<string, unknown>[] = [];
  await run(t.graph(4, 3), { cache, metric: (m) => metrics.push(m) });
  assert.deepEqual(metrics.map((m) => [m.stage, m.loss, m.cached]), [["hm-src", 0.5, true]]);
});

Deno.test("experiment cache: --explain says why each node hits or misses", async () => {
  const cache = await tempCache();
  const t = toys("ex");
  const lines: string[] = [];
  await run(t.graph(3, 1), { cache, explain: (l) => lines.push(l) });
  assert.match(lines[0], /ex-src .*miss: no cached output of stage ex-src yet/);
  lines.length = 0;
  await run(t.graph(3, 1), { cache, explain: (l) => lines.push(l) });
  assert.ok(lines.every((l) => l.includes("hit")), lines.join("\n"));
  lines.length = 0;
  await run(t.graph(5, 1), { cache, explain: (l) => lines.push(l) });
  assert.match(lines[0], /ex-src .*miss: nearest cached ex-src \w+ differs in params\.n 3 → 5/);
  assert.match(lines[1], /ex-sum .*miss: .*differs in upstream\.xs/);
  lines.length = 0;
  await run(t.graph(3, 1), { cache, force: new Set(["ex-sum"]), explain: (l) => lines.push(l) });
  assert.match(lines[1], /miss: --force ex-sum/);
});

Deno.test("experiment cache: --force recomputes one stage; an unknown --force name is an error", async () => {
  const cache = await tempCache();
  const t = toys("fo");
  await run(t.graph(3, 1), { cache });
  const r = await run(t.graph(3, 1), { cache, force: new Set(["fo-sum"]) });
  assert.deepEqual([count("fo-src"), count("fo-sum")], [1, 2]);
  assert.deepEqual(r.reports.map((x) => x.status), ["hit", "computed"]);
  const exit = await Effect.runPromiseExit(
    runGraph(t.graph(3, 1), { cache, force: new Set(["nope"]) }).pipe(
      Effect.provideService(Progress, memoryProgress()),
    ),
  );
  assert.ok(Exit.isFailure(exit));
  assert.match(
    String(exit.cause),
    /--force nope: no such stage in this graph; stages: fo-src, fo-sum/,
  );
});

Deno.test("experiment cache: a corrupt manifest or blob is recomputed with a warning", async () => {
  const cache = await tempCache();
  const blobby = defineStage({
    name: "co-blob",
    version: 1,
    params: Schema.Struct({ n: Schema.Int }),
    codec: {
      encode: (xs: number[]) => ({ json: { n: xs.length }, blobs: { data: new Uint8Array(xs) } }),
      decode: (e) => Array.from(e.blobs!.data),
    },
    run: (p) =>
      Effect.sync(() => {
        bump("co-blob");
        return Array.from({ length: p.n }, (_, i) => i);
      }),
  });
  const g = { out: node(blobby, { n: 6 }) };
  const warnings: string[] = [];
  const first = await run(g, { cache });
  const key = first.reports[0].key;
  // Flip one character of the manifest's output JSON.
  const path = cache.entryPath(key);
  await Deno.writeTextFile(path, (await Deno.readTextFile(path)).replace('"n":6', '"n":7'));
  const second = await run(g, { cache, warn: (w) => warnings.push(w) });
  assert.equal(count("co-blob"), 2);
  assert.deepEqual(second.results.out, [0, 1, 2, 3, 4, 5]);
  assert.match(warnings[0], /co-blob .* is corrupt \(manifest checksum mismatch\); recomputing/);
  // Damage the blob itself.
  const manifest = JSON.parse(await Deno.readTextFile(path));
  await Deno.writeFile(
    cache.objectPath(manifest.blobs.data.sha256),
    new Uint8Array([9, 9, 9, 9, 9, 9]),
  );
  await run(g, { cache, warn: (w) => warnings.push(w) });
  assert.equal(count("co-blob"), 3);
  assert.match(warnings[1], /blob "data" does not match its hash/);
  // Garbage instead of JSON.
  await Deno.writeTextFile(path, "{not json");
  await run(g, { cache, warn: (w) => warnings.push(w) });
  assert.equal(count("co-blob"), 4);
  assert.match(warnings[2], /manifest is not valid JSON/);
  const fine = await run(g, { cache, warn: (w) => warnings.push(w) });
  assert.equal(count("co-blob"), 4);
  assert.equal(fine.reports[0].status, "hit");
});

Deno.test("experiment cache: an interrupted run resumes without recomputing finished stages", async () => {
  const cache = await tempCache();
  const t = toys("in");
  const started = Effect.runSync(Deferred.make<void>());
  let block = true;
  const slow = defineStage({
    name: "in-slow",
    version: 1,
    params: Schema.Struct({}),
    run: (_p, inputs: { total: number }, ctx) =>
      Effect.gen(function* () {
        bump("in-slow");
        // A long stage keeps partial progress in its scratch folder.
        yield* Effect.promise(() => Deno.writeTextFile(`${ctx.scratch}/partial`, "half"));
        yield* Deferred.succeed(started, undefined);
        if (block) yield* Effect.never;
        return inputs.total + 1;
      }),
  });
  const g = () => ({ out: node(slow, {}, { total: t.graph(4, 1).out }) });
  const fiber = Effect.runFork(
    runGraph(g(), { cache }).pipe(Effect.provideService(Progress, memoryProgress())),
  );
  await Effect.runPromise(Deferred.await(started));
  await Effect.runPromise(Fiber.interrupt(fiber));
  assert.deepEqual([count("in-src"), count("in-sum"), count("in-slow")], [1, 1, 1]);
  // The interrupted stage's lock is released and its scratch kept for a resume.
  assert.ok(await lockIsFree(`${cache.root}/locks`));
  block = false;
  const r = await run(g(), { cache });
  assert.equal(r.results.out, 11);
  assert.deepEqual([count("in-src"), count("in-sum"), count("in-slow")], [1, 1, 2]);
  assert.deepEqual(r.reports.map((x) => x.status), ["hit", "hit", "computed"]);
});

Deno.test("experiment cache: two concurrent runners compute each stage once", async () => {
  const cache = await tempCache();
  const slowSrc = slowSource("cc-src", 200, () => bump("cc-src"));
  const g = () => ({ out: node(slowSrc, { n: 5 }) });
  const [a, b] = await Promise.all([
    run(g(), { cache, lock: { pollMs: 20 } }),
    run(g(), { cache, lock: { pollMs: 20 } }),
  ]);
  assert.equal(count("cc-src"), 1);
  assert.deepEqual(a.results.out, b.results.out);
  assert.deepEqual([a.reports[0].status, b.reports[0].status].sort(), ["computed", "shared"]);
});

const childCmd = (cacheDir: string, work: string) =>
  new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "tests/experiment_toy_child.ts",
      cacheDir,
      work,
    ],
    cwd: new URL("../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  });

Deno.test("experiment cache: two processes running the same graph share one computation", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "perk-cache-" });
  const work = await Deno.makeTempDir({ prefix: "perk-work-" });
  const [o1, o2] = await Promise.all([
    childCmd(cacheDir, work).output(),
    childCmd(cacheDir, work).output(),
  ]);
  const dec = new TextDecoder();
  assert.ok(o1.success && o2.success, dec.decode(o1.stderr) + dec.decode(o2.stderr));
  const r1 = JSON.parse(dec.decode(o1.stdout)), r2 = JSON.parse(dec.decode(o2.stdout));
  assert.equal(r1.sum, 285);
  assert.equal(r2.sum, 285);
  const lines = (await Deno.readTextFile(`${work}/counts.txt`)).trim().split("\n");
  assert.deepEqual(lines.map((l) => l.split(" ")[0]).sort(), ["child-first", "child-second"]);
  // The cache is intact: both entries verify.
  const cache = new StageCache(cacheDir);
  const again = await run(toyGraph(work), { cache });
  assert.deepEqual(again.reports.map((r) => r.status), ["hit", "hit"]);
  assert.equal(
    [...Deno.readDirSync(`${cacheDir}/entries`)].filter((e) => e.name.endsWith(".tmp")).length,
    0,
  );
});

Deno.test("experiment cache: a run killed mid-stage (SIGKILL) blocks nothing and resumes", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "perk-cache-" });
  const work = await Deno.makeTempDir({ prefix: "perk-work-" });
  await Deno.writeTextFile(`${work}/block`, "");
  const child = childCmd(cacheDir, work).spawn();
  while (!(await Deno.stat(`${work}/second-started`).then(() => true, () => false))) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.output();
  await Deno.remove(`${work}/block`);
  // The dead run's lock file is still on disk, but the OS released its lock with the process.
  assert.ok(await lockIsFree(`${cacheDir}/locks`));
  const r = await run(toyGraph(work), { cache: new StageCache(cacheDir), lock: { pollMs: 20 } });
  assert.equal(r.results.sum, 285);
  assert.deepEqual(r.reports.map((x) => x.status), ["hit", "computed"]);
  const lines = (await Deno.readTextFile(`${work}/counts.txt`)).trim().split("\n");
  assert.deepEqual(lines.map((l) => l.split(" ")[0]), [
    "child-first",
    "child-second",
    "child-second",
  ]);
});

Deno.test("experiment cache: equal nodes built separately (sweep points) run once", async () => {
  const cache = await tempCache();
  const t = toys("sw");
  // Two sweep points over k; each builds its own src node object with equal parameters.
  const targets = { k1: t.graph(6, 1).out, k2: t.graph(6, 2).out, k3: t.graph(6, 3).out };
  const r = await run(targets, { cache });
  assert.deepEqual([r.results.k1, r.results.k2, r.results.k3], [21, 42, 63]);
  assert.deepEqual([count("sw-src"), count("sw-sum")], [1, 3]);
  assert.equal(r.plan.order.length, 4);
});
