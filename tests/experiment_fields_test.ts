/**
 * Core experiment keys: `train_lengths`/`test_lengths` take token counts ("256") besides the
 * windows, and `babi_source` feeds the problem specs from a folder of released bAbI files
 * (checked, and made absolute, when the graph is built). The released-file test needs
 * ../shared/data/babi and skips with a message without it.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { Effect, Exit } from "effect";
import { type ConfigRequest, resolveConfig } from "../pipeline/experiment/config.ts";
import { dataNodes } from "../pipeline/experiment/experiment.ts";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import { parseBabi } from "../pipeline/data/babi_reader.ts";
import { decodeProblemSpec } from "../pipeline/data/stages.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { sharedPath } from "./testing.ts";

function resolve(request: Partial<ConfigRequest>) {
  return Effect.runSyncExit(
    resolveConfig(FIELDS, { defaults: DEFAULTS }, { profile: "cpu", ...request }),
  );
}

function failure(request: Partial<ConfigRequest>): string {
  const exit = resolve(request);
  assert.ok(Exit.isFailure(exit), "expected a configuration error");
  return String(exit.cause);
}

Deno.test("lengths: token counts such as 256 besides the windows; bad ones name both forms", () => {
  const cli = resolve({ sets: ["test_lengths=256", "train_lengths=256,1k"] });
  assert.ok(Exit.isSuccess(cli), String(Exit.isFailure(cli) && cli.cause));
  assert.deepEqual(cli.value.config.test_lengths, ["256"]);
  assert.deepEqual(cli.value.config.train_lengths, ["256", "1k"]);
  // YAML reads 256 as a number: kept as its digits (lengths are strings downstream).
  const yaml = resolve({ file: { path: "x.yaml", values: { test_lengths: [256, "8k"] } } });
  assert.ok(Exit.isSuccess(yaml));
  assert.deepEqual(yaml.value.config.test_lengths, ["256", "8k"]);
  for (const bad of ["abc", "12", "1.5k", "-256"]) {
    assert.match(
      failure({ sets: [`test_lengths=${bad}`] }),
      /parameter "test_lengths" .*allowed: a non-empty list of 1k, 2k, .*128k \(×1024 tokens\) or a token count ≥ 64/,
      bad,
    );
  }
});

/** The babilong problem specs of a resolved config's graph, by split. */
async function specs(sets: string[]) {
  const exit = resolve({ sets: ["tasks=qa1", "n_train=2", "n_validation=1", "n_test=2", ...sets] });
  assert.ok(Exit.isSuccess(exit), String(Exit.isFailure(exit) && exit.cause));
  const nodes = await Effect.runPromise(dataNodes(exit.value));
  const bySplit = new Map<string, unknown>();
  for (const [name, n] of Object.entries(nodes)) bySplit.set(name.split("|")[4], n.params);
  return bySplit;
}

async function graphFailure(sets: string[]): Promise<string> {
  const exit = resolve({ sets });
  assert.ok(Exit.isSuccess(exit));
  const built = await Effect.runPromiseExit(dataNodes(exit.value));
  assert.ok(Exit.isFailure(built), "expected the graph to refuse the config");
  return String(built.cause);
}

Deno.test("babi_source: the simulator leaves the spec as it was; bad folders name the key and the fix", async () => {
  const sim = await specs([]);
  for (const spec of sim.values()) assert.ok(!Object.hasOwn(Object(spec), "babiSource"));
  const missing = await graphFailure(["babi_source=no/such/folder"]);
  assert.match(
    missing,
    /parameter "babi_source" = "no\/such\/folder": .*no\/such\/folder is missing/,
  );
  assert.match(missing, /relative folders resolve against the working directory/);
  assert.match(missing, /babi_source=simulator/);
  const empty = await Deno.makeTempDir();
  try {
    const lacks = await graphFailure([`babi_source=${empty}`, "tasks=qa1,qa2"]);
    assert.match(
      lacks,
      /lacks qa1_single-supporting-fact_train\.txt, qa1_single-supporting-fact_test\.txt, qa2_two-supporting-facts_train\.txt, qa2_two-supporting-facts_test\.txt/,
    );
    assert.match(
      await graphFailure([`babi_source=${empty}`, "dataset=student-records", "tasks=recall"]),
      /"babi_source" = .*babilong dataset only .*set babi_source=simulator/,
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("babi_source: problems come from the released files (../shared/data/babi)", async () => {
  const train = sharedPath("data/babi/en-10k/qa1_single-supporting-fact_train.txt");
  const test = sharedPath("data/babi/en/qa1_single-supporting-fact_test.txt");
  if (!train || !test) return;
  // ../shared splits the release over two folders: one folder with both files, as released.
  const dir = await Deno.makeTempDir({ dir: Deno.cwd(), prefix: ".babi-test-" });
  try {
    Deno.symlinkSync(train, `${dir}/qa1_single-supporting-fact_train.txt`);
    Deno.symlinkSync(test, `${dir}/qa1_single-supporting-fact_test.txt`);
    // Only the test file: the reader would draw training stories from it too; refused.
    const half = await Deno.makeTempDir();
    Deno.symlinkSync(test, `${half}/qa1_single-supporting-fact_test.txt`);
    assert.match(
      await graphFailure([`babi_source=${half}`]),
      /lacks qa1_single-supporting-fact_train\.txt;/,
    );
    await Deno.remove(half, { recursive: true });

    const rel = relative(Deno.cwd(), dir);
    assert.ok(!rel.startsWith("/"));
    const bySplit = await specs([`babi_source=${rel}`, "train_lengths=512", "test_lengths=512"]);
    const released = {
      train: parseBabi(Deno.readTextFileSync(train), "qa1"),
      test: parseBabi(Deno.readTextFileSync(test), "qa1"),
    };
    for (const split of ["train", "test"] as const) {
      const spec = await Effect.runPromise(decodeProblemSpec(bySplit.get(split)));
      assert.equal(spec.babiSource, dir, "the relative folder is made absolute");
      assert.equal(spec.length, "512");
      for (const p of generateProblems(spec)) {
        const text = p.context.join(" ");
        // A released story of this split whose every fact the context holds, in order.
        const story = released[split].find((s) =>
          s.question === p.question && s.answer === p.answer &&
          s.facts.every((f) => text.includes(`: ${f}`))
        );
        assert.ok(story, `${p.id}: no ${split} story of the released file matches`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
