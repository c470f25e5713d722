/** Experiment configuration: layers, validation errors, sweeps, YAML files and CLI parsing. */
import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { type ConfigRequest, resolveConfig, sweepGrid } from "../pipeline/experiment/config.ts";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import { EXPERIMENTS } from "../experiments/registry.ts";
import { parseCli } from "../experiments/cli.ts";

const qa2 = EXPERIMENTS.get("babilong-qa2-8k")!;

function resolve(request: Partial<ConfigRequest>, exp = qa2) {
  return Effect.runSyncExit(
    resolveConfig(FIELDS, { defaults: DEFAULTS, overrides: exp.overrides, sweep: exp.sweep }, {
      profile: "cpu",
      ...request,
    }),
  );
}

function failure(request: Partial<ConfigRequest>): string {
  const exit = resolve(request);
  assert.ok(Exit.isFailure(exit), "expected a configuration error");
  return String(exit.cause);
}

Deno.test("experiment config: profile defaults, experiment overrides, file, then --set", () => {
  const exit = resolve({
    file: { path: "x.yaml", values: { rank: 8, n_test: 12 } },
    sets: ["rank=32", "tasks=qa1,qa2", "test_lengths=[1k, 8k]"],
  });
  assert.ok(Exit.isSuccess(exit));
  const { config, profile, sweep } = exit.value;
  assert.equal(profile, "cpu");
  assert.equal(config.rank, 32); // --set beats the file
  assert.equal(config.n_test, 12); // the file beats the experiment's cpu override (100)
  assert.deepEqual(config.tasks, ["qa1", "qa2"]);
  assert.deepEqual(config.test_lengths, ["1k", "8k"]);
  assert.deepEqual(config.train_lengths, ["512"]); // the experiment's cpu override
  assert.equal(config.model, "tiny");
  assert.deepEqual(sweep, {});
  const paper = resolve({ profile: "paper" });
  assert.ok(Exit.isSuccess(paper));
  assert.equal(paper.value.config.rank, 256);
  assert.deepEqual(paper.value.config.train_lengths, ["8k"]);
  assert.equal(paper.value.config.model, "qwen2.5-0.5b");
});

Deno.test("experiment config: unknown and ill-typed keys name the key and the allowed values", () => {
  assert.match(
    failure({ sets: ["rnak=4"] }),
    /--set: unknown parameter "rnak"; allowed parameters: .*rank/,
  );
  assert.match(
    failure({ sets: ["rank=abc"] }),
    /parameter "rank" = "abc" is invalid .*allowed: an integer ≥ 1/,
  );
  assert.match(
    failure({ sets: ["rank=0"] }),
    /parameter "rank" = 0 is invalid .*allowed: an integer ≥ 1/,
  );
  assert.match(
    failure({ sets: ["tasks=qa9"] }),
    /parameter "tasks" .* allowed: a non-empty list of qa1, qa2, qa3/,
  );
  assert.match(
    failure({ sets: ["methods=magic"] }),
    /allowed: a non-empty list of perk, perk-no-encode, perk-ttt, ft-icr, prompt-only/,
  );
  assert.match(failure({ sets: ["metric=bleu"] }), /allowed: perk-em, token-f1, babilong, subem/);
  assert.match(
    failure({ sets: ["truncate=some"] }),
    /parameter "truncate" .*allowed: an integer ≥ 0 .* or "auto"/,
  );
  assert.match(failure({ sets: ["rank"] }), /--set "rank": expected key=value/);
  assert.match(
    failure({ file: { path: "bad.yaml", values: { steps: "four" } } }),
    /--config bad.yaml: parameter "steps" = "four" is invalid/,
  );
  assert.match(failure({ file: { path: "list.yaml", values: [1, 2] } }), /expected a YAML mapping/);
  assert.match(failure({ sweeps: ["rank=16,x"] }), /--sweep: parameter "rank" = "x" is invalid/);
  assert.match(failure({ sweeps: ["colour=1,2"] }), /--sweep: unknown parameter "colour"/);
  assert.match(failure({ profile: "gpu" as never }), /allowed profiles are cpu, paper/);
});

Deno.test("experiment config: sweeps validate values, combine with the experiment's, and form a grid", () => {
  const exit = resolve({ sweeps: ["rank=16,256", "steps=2,4", "truncate=0,auto"] });
  assert.ok(Exit.isSuccess(exit));
  assert.deepEqual(exit.value.sweep, { rank: [16, 256], steps: [2, 4], truncate: [0, "auto"] });
  assert.equal(sweepGrid(exit.value.sweep).length, 8);
  assert.deepEqual(sweepGrid({}), [{}]);
  // An experiment's own sweep (ablate-rank, cpu: 4,16) is replaced per key by --sweep.
  const ablate = EXPERIMENTS.get("ablate-rank")!;
  const own = resolve({}, ablate);
  assert.ok(Exit.isSuccess(own));
  assert.deepEqual(own.value.sweep, { rank: [4, 16] });
  const replaced = resolve({ sweeps: ["rank=8,32"] }, ablate);
  assert.ok(Exit.isSuccess(replaced));
  assert.deepEqual(replaced.value.sweep, { rank: [8, 32] });
  // A one-value sweep is a plain setting.
  const single = resolve({ sweeps: ["rank=8"] });
  assert.ok(Exit.isSuccess(single));
  assert.deepEqual(single.value.sweep, {});
  assert.equal(single.value.config.rank, 8);
});

Deno.test("experiment config: a run's config.yaml is accepted by --config", () => {
  const exit = resolve({
    file: {
      path: "runs/x/config.yaml",
      values: {
        experiment: "babilong-qa2-8k",
        profile: "cpu",
        config: { rank: 4 },
        sweep: { steps: [2, 4] },
      },
    },
  });
  assert.ok(Exit.isSuccess(exit));
  assert.equal(exit.value.config.rank, 4);
  assert.deepEqual(exit.value.sweep, { steps: [2, 4] });
});

Deno.test("experiment config: every declared experiment resolves under both profiles", () => {
  const names = [...EXPERIMENTS.keys()].sort();
  assert.deepEqual(names, [
    "ablate-rank",
    "ablate-steps",
    "ablate-truncation",
    "babilong-qa1-1k",
    "babilong-qa1-8k",
    "babilong-qa2-1k",
    "babilong-qa2-8k",
    "babilong-qa3-1k",
    "babilong-qa3-8k",
    "efficiency",
    "length-generalisation",
    "positional-bias",
    "student-records-aggregate",
    "student-records-recall",
    "student-records-relation",
  ]);
  for (const exp of EXPERIMENTS.values()) {
    for (const profile of ["cpu", "paper"] as const) {
      const exit = resolve({ profile }, exp);
      assert.ok(
        Exit.isSuccess(exit),
        `${exp.name} (${profile}): ${Exit.isFailure(exit) ? exit.cause : ""}`,
      );
      assert.ok((exit.value.config.methods as string[]).includes("perk"), exp.name);
    }
  }
});

Deno.test("experiment cli: flags, repeatable --set/--force, and --sweep taking several assignments", () => {
  const a = parseCli([
    "run",
    "ablate-rank",
    "--sweep",
    "rank=16,256",
    "steps=2,4",
    "--set",
    "n_test=5",
    "--set=seed=3",
    "--model",
    "/models/q",
    "--force",
    "score",
    "--dry-run",
    "--explain",
  ]);
  assert.equal(a.experiment, "ablate-rank");
  assert.deepEqual(a.sweeps, ["rank=16,256", "steps=2,4"]);
  assert.deepEqual(a.sets, ["n_test=5", "seed=3", "model=/models/q"]);
  assert.deepEqual(a.force, ["score"]);
  assert.ok(a.dryRun && a.explain);
  assert.throws(() => parseCli(["run", "x", "--frobnicate"]), /unknown option --frobnicate/);
  assert.throws(() => parseCli(["run", "x", "--set"]), /--set needs a value/);
  assert.equal(parseCli(["results", "x", "--csv"]).csv, true);
  // "--sweep=key=values" is the inline form of "--sweep key=values", and takes more after it.
  assert.deepEqual(parseCli(["run", "x", "--sweep=rank=16,256", "steps=2,4"]).sweeps, [
    "rank=16,256",
    "steps=2,4",
  ]);
});
