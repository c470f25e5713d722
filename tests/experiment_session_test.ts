/**
 * Whole experiment sessions on small real data with a toy method: the run folder and its
 * files, sweep sharing, a warm second run, --dry-run, an unknown method, the registry, and
 * `results`.
 */
import assert from "node:assert/strict";
import { Effect, Exit, Schema } from "effect";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { type Config, field } from "../pipeline/experiment/config.ts";
import { defineExperiment } from "../pipeline/experiment/experiment.ts";
import { coreFields } from "../pipeline/experiment/fields.ts";
import { configKeys, MethodRegistry } from "../pipeline/experiment/methods.ts";
import { memoryProgress, Progress } from "../pipeline/experiment/progress.ts";
import { CSV_HEADER } from "../pipeline/experiment/report.ts";
import { latestRun } from "../pipeline/experiment/run_dir.ts";
import { runSession, type SessionOptions } from "../pipeline/experiment/session.ts";
import { main } from "../experiments/cli.ts";
import { method as toy, toyCounts } from "./experiment_toy_child.ts";
import { predictionColumns } from "./experiment_fixtures.ts";

const FIELDS = {
  ...coreFields(["toy", "perk"]),
  rank: field(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)), "an integer ≥ 1", "toy rank"),
};
const base: Config = {
  dataset: "babilong",
  tasks: ["qa1"],
  methods: ["toy"],
  train_lengths: ["1k"],
  test_lengths: ["1k"],
  train_position: "rnd",
  test_position: "rnd",
  n_train: 3,
  n_validation: 1,
  n_test: 4,
  seed: 7,
  babi_source: "simulator",
  segment_tokens: 256,
  tokenizer: "gpt2",
  metric: "perk-em",
  rank: 1,
};
const experiment = defineExperiment({
  name: "toy-exp",
  title: "toy experiment",
  description: "tests",
  sweep: { all: { rank: [1, 2] } },
  note: "toy note",
});

async function session(over: Partial<SessionOptions> = {}) {
  const lines: string[] = [];
  const progress = memoryProgress();
  const options: SessionOptions = {
    experiment,
    fields: FIELDS,
    defaults: { cpu: base, paper: base },
    registry: new MethodRegistry([toy]),
    request: {},
    cache: new StageCache(await Deno.makeTempDir({ prefix: "perk-cache-" })),
    runsRoot: await Deno.makeTempDir({ prefix: "perk-runs-" }),
    adapter: { line: "adapter: test", record: null, isCpu: true },
    out: (l) => lines.push(l),
    warn: () => {},
    ...over,
  };
  const exit = await Effect.runPromiseExit(
    runSession(options).pipe(Effect.provideService(Progress, progress)),
  );
  return { exit, lines, options, progress };
}

Deno.test("experiment session: a swept run writes the run folder; shared stages run once; a warm rerun computes nothing", async () => {
  toyCounts.fit = toyCounts.answer = 0;
  const first = await session();
  assert.ok(Exit.isSuccess(first.exit), String(Exit.isFailure(first.exit) && first.exit.cause));
  const r = first.exit.value;
  assert.equal(r.kind, "done");
  if (r.kind !== "done") return;
  // build-problems (train, test: the toy never reads validation) shared by both ranks;
  // fit/answer/score per rank.
  const byStage = (s: string) => r.plan.order.filter((n) => n.node.stage.name === s).length;
  assert.deepEqual(
    ["build-problems", "toy-fit", "toy-answer", "score"].map(byStage),
    [2, 2, 2, 2],
  );
  assert.deepEqual([toyCounts.fit, toyCounts.answer], [2, 2]);
  const files = [...Deno.readDirSync(r.runDir)].map((e) => e.name).sort();
  for (
    const f of [
      "config.yaml",
      "env.json",
      "log.txt",
      "metrics.jsonl",
      "results.csv",
      "results.md",
      "predictions.jsonl",
      "accuracy.svg",
      "curve-toy-fit-loss.svg",
    ]
  ) {
    assert.ok(files.includes(f), `${f} in ${files.join(", ")}`);
  }
  assert.match(r.runDir, /toy-exp\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ-[0-9a-f]{12}$/);
  const csv = (await Deno.readTextFile(`${r.runDir}/results.csv`)).trim().split("\n");
  assert.equal(csv[0], `${CSV_HEADER},rank`);
  assert.equal(csv.length, 3);
  assert.match(csv[1], /^toy,qa1,1k,1k,4,0\.75,0\.\d+,0\.\d+,10,1000,1$/);
  assert.match(csv[2], /^toy,qa1,1k,1k,4,0\.75,.*,20,2000,2$/);
  const env = JSON.parse(await Deno.readTextFile(`${r.runDir}/env.json`));
  assert.equal(env.deno, Deno.version.deno);
  assert.equal(env.effect, "4.1.0");
  assert.ok("commit" in env.git && "dirty" in env.git);
  assert.ok("adapter" in env);
  const metrics = (await Deno.readTextFile(`${r.runDir}/metrics.jsonl`)).trim().split("\n").map((
    l,
  ) => JSON.parse(l));
  assert.equal(metrics.filter((m) => m.stage === "toy-fit").length, 6);
  assert.match(await Deno.readTextFile(`${r.runDir}/config.yaml`), /rank:\n\s+- 1\n\s+- 2/);
  const md = await Deno.readTextFile(`${r.runDir}/results.md`);
  assert.match(md, /## Sweep: rank/);
  assert.match(md, /toy note/);
  assert.match(first.lines.join("\n"), /^\| toy \| qa1 \| 1k \| 1k \| 1 \| 75\.0 \| 4 \|/m);

  // predictions.jsonl: one line per rank × test problem, exactly the scored fields.
  const preds = (await Deno.readTextFile(`${r.runDir}/predictions.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(preds.length, 8);
  for (const [i, p] of preds.entries()) {
    assert.deepEqual(Object.keys(p), predictionColumns(true, true));
    const rank = i < 4 ? 1 : 2;
    assert.deepEqual(
      [p.method, p.task, p.train_length, p.test_length, p.sweep, p.ms],
      ["toy", "qa1", "1k", "1k", { rank }, 10 * rank],
    );
    assert.equal(p.id, `babilong/qa1/1k/test/rnd/7/${i % 4}`);
    assert.match(p.question, /^Where is \w+\?$/);
    // The reference as scored: the answer alone, not the tagged training target.
    assert.match(p.target, /^(bathroom|bedroom|garden|hallway|kitchen|office)$/);
    // The toy answers the tagged target three times and a blank once: that is what counts.
    if (i % 4 === 3) {
      assert.deepEqual([p.prediction, p.correct, p.answer_kind], [" \n ", 0, "empty"]);
    } else {
      assert.ok(p.prediction.endsWith(`<output>${p.target}</output>`), p.prediction);
      assert.deepEqual([p.correct, p.answer_kind], [1, "right"]);
    }
  }
  assert.deepEqual(preds.slice(0, 4).map((p) => p.target), preds.slice(4).map((p) => p.target));
  assert.deepEqual(
    preds.slice(0, 4).map((p) => p.target),
    ["kitchen", "garden", "office", "kitchen"],
  );
  // results.md: the constant answer (kitchen: 2 of the 4 distinct test problems), the empty
  // share (the blank answer of each rank) and three predictions beside their targets.
  assert.match(md, /## Best constant answer\n[^#]*\| qa1 \| 1k \| kitchen 50\.0% \(n = 4\) \|/);
  assert.match(md, /### toy\n\nempty predictions: 25\.0% \(2 of 8\)\n/);
  const samples = md.split("### toy")[1].split("\n").filter((l) => l.startsWith("| babilong/"));
  assert.deepEqual(
    samples.map((l) => l.split(" | ").slice(0, 2)),
    [0, 1, 2].map((i) => [`| babilong/qa1/1k/test/rnd/7/${i}`, `\`${preds[i].target}\``]),
  );
  assert.ok(samples.every((l) => /<output>\w+<\/output>` \| 1 \|$/.test(l)), samples.join("\n"));
  assert.match(
    first.lines.join("\n"),
    /^best constant answer, qa1 @ 1k: kitchen 50\.0% \(n = 4\)$/m,
  );
  // accuracy.svg: a bar per rank with its Wilson whisker, and the constant rate dashed.
  const svg = await Deno.readTextFile(`${r.runDir}/accuracy.svg`);
  assert.equal((svg.match(/<path class="ci" /g) ?? []).length, 2);
  const refs = [...svg.matchAll(/<line class="reference" [^>]*y1="([\d.]+)"/g)].map((m) => m[1]);
  // y = top 44 + plot 240 × (1 − 0.5).
  assert.deepEqual(refs, ["164", "164"]);
  assert.match(md, /!\[accuracy\.svg\]\(accuracy\.svg\)/);

  // Warm cache: same options → everything hits, a new run folder, same table.
  const second = await session({ cache: first.options.cache, runsRoot: first.options.runsRoot });
  assert.ok(Exit.isSuccess(second.exit));
  assert.deepEqual([toyCounts.fit, toyCounts.answer], [2, 2]);
  assert.ok(second.progress.lines.filter((l) => l.includes(": running")).length === 0);
  const r2 = second.exit.value;
  assert.ok(r2.kind === "done" && r2.runDir !== r.runDir);
  assert.equal(
    await latestRun(first.options.runsRoot, "toy-exp"),
    r2.kind === "done" ? r2.runDir : "",
  );
  assert.deepEqual(
    await Deno.readTextFile(`${r2.kind === "done" ? r2.runDir : ""}/results.csv`),
    await Deno.readTextFile(`${r.runDir}/results.csv`),
  );
});

Deno.test("experiment session: --dry-run prints the config and the plan and runs nothing", async () => {
  const { exit, lines, options } = await session({ dryRun: true });
  assert.ok(Exit.isSuccess(exit));
  const text = lines.join("\n");
  assert.match(text, /^adapter: test/);
  assert.match(text, /resolved config:\n {2}experiment: toy-exp\n {2}profile: cpu/);
  assert.match(text, /plan: 8 stage runs/);
  assert.match(text, /build-problems [0-9a-f]{12} \{"dataset":"babilong"/);
  assert.match(text, /miss: no cached output of stage toy-fit yet/);
  // Each method's config keys (its params' fields) with their values, swept ones as a set.
  assert.match(text, /methods \(the config keys each reads\):\n {2}toy: rank=\{1,2\}/);
  assert.equal(
    await Deno.stat(`${options.cache.root}/entries`).then(() => true, () => false),
    false,
  );
});

Deno.test("experiment session: a method the registry does not know fails before anything runs", async () => {
  // FIELDS allow "perk"; this registry holds only the toy.
  const { exit, options } = await session({ request: { sets: ["methods=[perk]"] } });
  assert.ok(Exit.isFailure(exit));
  assert.match(String(exit.cause), /method perk is unknown; known methods: toy/);
  // Nothing was built or cached, and no run folder was made.
  assert.equal(
    await Deno.stat(`${options.cache.root}/entries`).then(() => true, () => false),
    false,
  );
  assert.deepEqual([...Deno.readDirSync(options.runsRoot)], []);
});

Deno.test("experiment session: the registry resolves registered methods and lists the known ones", async () => {
  const registry = new MethodRegistry([toy]);
  const resolved = await Effect.runPromise(registry.resolve("toy"));
  assert.equal(resolved.name, "toy");
  // The config keys are the params Struct's fields.
  assert.deepEqual(configKeys(resolved), ["rank"]);
  const unknown = await Effect.runPromiseExit(registry.resolve("nope"));
  assert.ok(Exit.isFailure(unknown));
  assert.match(String(unknown.cause), /method nope is unknown; known methods: toy/);
  assert.throws(() => new MethodRegistry([toy, toy]), /method toy is registered twice/);
});

Deno.test("experiment cli: results prints the latest table, --csv its path", async () => {
  const runs = await Deno.makeTempDir({ prefix: "perk-runs-" });
  for (
    const [name, table] of [["2025-01-01T00-00-00Z-aaaaaaaaaaaa", "old"], [
      "2025-02-01T00-00-00Z-bbbbbbbbbbbb",
      "new",
    ]]
  ) {
    await Deno.mkdir(`${runs}/babilong-qa1-1k/${name}`, { recursive: true });
    await Deno.writeTextFile(`${runs}/babilong-qa1-1k/${name}/results.md`, `# ${table}\n`);
    await Deno.writeTextFile(`${runs}/babilong-qa1-1k/${name}/results.csv`, CSV_HEADER + "\n");
  }
  // An unfinished newer run (no results.csv) is skipped.
  await Deno.mkdir(`${runs}/babilong-qa1-1k/2025-03-01T00-00-00Z-cccccccccccc`);
  const printed: string[] = [];
  const log = console.log;
  console.log = (s: string) => printed.push(s);
  try {
    assert.equal(await main(["results", "babilong-qa1-1k", "--runs", runs]), 0);
    assert.equal(await main(["results", "babilong-qa1-1k", "--runs", runs, "--csv"]), 0);
  } finally {
    console.log = log;
  }
  assert.deepEqual(printed, [
    "# new",
    `${runs}/babilong-qa1-1k/2025-02-01T00-00-00Z-bbbbbbbbbbbb/results.csv`,
  ]);
});

Deno.test("experiment session: a failed run says so in its folder (FAILED, the log's last line) and writes no results", async () => {
  const r = await session({ request: { sweeps: ["rank=99"] } });
  assert.ok(Exit.isFailure(r.exit));
  const root = r.options.runsRoot;
  const [run] = [...Deno.readDirSync(`${root}/toy-exp`)].map((e) => `${root}/toy-exp/${e.name}`);
  assert.match(Deno.readTextFileSync(`${run}/FAILED`), /rank 99 is refused by the toy/);
  const log = Deno.readTextFileSync(`${run}/log.txt`).trim().split("\n");
  assert.match(log.at(-1)!, /^FAILED: .*rank 99 is refused by the toy/);
  // The log starts with the estimate of what computes (the toy stages have no cost model).
  assert.match(log[0], /^estimate: .* for 5 stage runs .*no estimate for toy-fit, toy-answer/);
  // Each event is logged once.
  // (the training problems were built before toy-fit failed: one "running", one "done")
  assert.equal(log.filter((l) => /build-problems .*: running/.test(l)).length, 1);
  assert.equal(log.filter((l) => /build-problems/.test(l) && /done in/.test(l)).length, 1);
  assert.equal(log.filter((l) => / start$/.test(l)).length, 0);
  assert.ok(![...Deno.readDirSync(run)].some((e) => e.name === "results.md"));
});

Deno.test("experiment session: tasks set by the user show in the title, results.md and the folder name", async () => {
  const r = await session({ request: { sets: ["tasks=[qa2]"], sweeps: ["rank=1"] } });
  assert.ok(Exit.isSuccess(r.exit), String(Exit.isFailure(r.exit) && r.exit.cause));
  const done = r.exit.value;
  if (done.kind !== "done") throw new Error(done.kind);
  assert.ok(
    r.lines.some((l) => /toy experiment \(as run: tasks qa2\)/.test(l)),
    r.lines.join("\n"),
  );
  assert.match(done.runDir, /-[0-9a-f]{12}-qa2$/);
  assert.match(
    Deno.readTextFileSync(`${done.runDir}/results.md`),
    /^# toy-exp: toy experiment \(as run: tasks qa2\)/,
  );
});
