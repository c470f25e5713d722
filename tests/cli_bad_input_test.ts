/**
 * Bad input through the real command-line tools (subprocesses, as a user runs them): each
 * case asserts the exit status, that the message names the flag, field or file and the fix,
 * and that no stack trace is printed. Nothing here needs a GPU: every case fails before a
 * runtime does any work, and no run folder is made.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url).pathname;
const tmp = Deno.makeTempDirSync();
const file = `${tmp}/a-file`, emptyDir = `${tmp}/empty`;
Deno.writeTextFileSync(file, "x");
Deno.mkdirSync(emptyDir);
Deno.writeTextFileSync(
  `${tmp}/other.yaml`,
  "experiment: babilong-qa2-8k\nprofile: cpu\nconfig:\n  rank: 8\n",
);
const base = `${root}fixtures/models/tiny-base`;
// Model folders missing one part each: the tokenizer, the weights; a broken config.json.
for (
  const [name, files] of [["no-tok", ["config.json"]], ["no-weights", [
    "config.json",
    "compact_vocab.json",
  ]]] as const
) {
  Deno.mkdirSync(`${tmp}/${name}`);
  for (const f of files) Deno.copyFileSync(`${base}/${f}`, `${tmp}/${name}/${f}`);
}
Deno.mkdirSync(`${tmp}/llama`);
Deno.writeFileSync(`${tmp}/llama/stories.bin`, new Uint8Array(8));
// The shipped base with a config claiming 5 layers: its weights do not match.
Deno.mkdirSync(`${tmp}/five-layers`);
for (const f of ["model.safetensors", "compact_vocab.json"]) {
  Deno.copyFileSync(`${base}/${f}`, `${tmp}/five-layers/${f}`);
}
Deno.writeTextFileSync(
  `${tmp}/five-layers/config.json`,
  Deno.readTextFileSync(`${base}/config.json`).replace(
    /"num_hidden_layers": 4/,
    '"num_hidden_layers": 5',
  ),
);
Deno.mkdirSync(`${tmp}/bad-config`);
Deno.writeTextFileSync(`${tmp}/bad-config/config.json`, '{"x": 1');

const tools = {
  experiment: "experiments/cli.ts",
  data: "pipeline/data/cli.ts",
  generate: "pipeline/model/generate_cli.ts",
  ask: "pipeline/perk/ask_cli.ts",
  export: "pipeline/perk/export_cli.ts",
  probe: "pipeline/perk/probe_cli.ts",
} as const;

type Case = [tool: keyof typeof tools, args: string[], status: number, message: RegExp];
const qa1 = ["run", "babilong-qa1-1k", "--dry-run"];
const data = ["babilong", "--task", "qa1", "--length", "256", "--split", "test", "--n", "2"];
const out = ["--seed", "0", "--out", `${tmp}/p.jsonl`];
const gen = ["--model", base, "--prompt", "Where is Mary?"];

const CASES: Case[] = [
  [
    "experiment",
    ["run", "nosuch"],
    2,
    /unknown experiment "nosuch"; experiments:\n.*babilong-qa1-1k/,
  ],
  ["experiment", ["run"], 2, /name an experiment; experiments:/],
  ["experiment", ["run", "babilong-qa1-1k", "babilong-qa2-1k"], 2, /one experiment at a time/],
  ["experiment", [...qa1, "--bogus"], 2, /unknown option --bogus/],
  [
    "experiment",
    [...qa1, "--set", "rnak=4"],
    2,
    /unknown parameter "rnak"; allowed parameters: .*rank/,
  ],
  [
    "experiment",
    [...qa1, "--set", "rank=abc"],
    2,
    /"rank" = "abc" is invalid .*allowed: an integer ≥ 1/,
  ],
  ["experiment", [...qa1, "--set", "rank=0"], 2, /"rank" = 0 is invalid .*an integer ≥ 1/],
  [
    "experiment",
    [...qa1, "--set", "truncate=9"],
    2,
    /truncate = 9 .* steps = 4 .*set truncate ≤ 4/,
  ],
  [
    "experiment",
    [...qa1, "--sweep", "rank=4,4"],
    2,
    /sweep rank: the value 4 is given twice; give distinct values/,
  ],
  ["experiment", [...qa1, "--sweep", "rank="], 2, /--sweep rank: give at least one value/],
  [
    "experiment",
    [...qa1, "--set", "methods=[perk,perk]"],
    2,
    /"methods" lists "perk" twice; list each value once/,
  ],
  ["experiment", [...qa1, "--set", "tasks=[]"], 2, /"tasks" .* allowed: a non-empty list/],
  [
    "experiment",
    [...qa1, "--profile", "gpu"],
    2,
    /--profile "gpu": allowed profiles are cpu, paper/,
  ],
  [
    "experiment",
    [...qa1, "--config", `${tmp}/none.yaml`],
    2,
    /--config .*none\.yaml: .*give a readable YAML file/,
  ],
  [
    "experiment",
    [...qa1, "--config", `${tmp}/other.yaml`],
    2,
    /"babilong-qa2-8k"'s config, not "babilong-qa1-1k"'s; .*--force-config/,
  ],
  ["experiment", [...qa1, "--cache", file], 2, /--cache .*a-file is a file; give a folder/],
  ["experiment", [...qa1, "--runs", file], 2, /--runs .*a-file is a file; give a folder/],
  [
    "experiment",
    [...qa1, "--model", `${tmp}/nomodel`],
    2,
    /--model .*nomodel: no such file or folder/,
  ],
  [
    "experiment",
    [...qa1, "--model", emptyDir],
    2,
    /--model .*empty: the folder has no config\.json; give a Hugging Face/,
  ],
  [
    "experiment",
    [...qa1, "--model", `${tmp}/no-tok`],
    2,
    /no-tok: no tokenizer\.json \(or compact_vocab\.json\) in the folder; copy the model's tokenizer there/,
  ],
  ["experiment", [...qa1, "--model", `${tmp}/no-weights`], 2, /no-weights: no model\.safetensors/],
  [
    "experiment",
    [...qa1, "--model", `${tmp}/bad-config`],
    2,
    /bad-config\/config\.json: not a valid JSON object/,
  ],
  [
    "experiment",
    [...qa1, "--model", `${tmp}/llama`],
    2,
    /llama: the folder has no config\.json; it holds the llama2\.c checkpoint stories\.bin: give --model .*llama\/stories\.bin/,
  ],
  [
    "experiment",
    [...qa1, "--model", `${tmp}/five-layers`],
    2,
    /five-layers \(safetensors\): tensor "model\.layers\.4\.input_layernorm\.weight" is missing; expected shape \[128\]/,
  ],
  ["data", [...data, "--seed", "0"], 2, /--out is required/],
  [
    "data",
    [...data.slice(0, 4), "3x", "--split", "test", "--n", "2", ...out],
    2,
    /length "3x": use one of 1k, .* or a token count/,
  ],
  ["data", [...data.slice(0, 8), "-3", ...out], 2, /--n must be an integer ≥ 1, got -3/],
  [
    "data",
    ["babylong", ...data.slice(1), ...out],
    2,
    /dataset "babylong": use one of babilong, student-records/,
  ],
  [
    "data",
    ["babilong", "--task", "qa9", ...data.slice(3), ...out],
    2,
    /--task "qa9": use one of qa1, qa2, qa3/,
  ],
  [
    "data",
    [...data.slice(0, 5), "--split", "dev", "--n", "2", ...out],
    2,
    /--split "dev": use one of train, validation, test/,
  ],
  [
    "data",
    [...data, ...out, "--corpus", `${tmp}/nocorpus`],
    2,
    /corpus ".*nocorpus" does not exist; use "sotu", a folder of \.txt files/,
  ],
  [
    "data",
    [...data, ...out, "--babi-dir", emptyDir],
    2,
    /no qa1_single-supporting-fact_test\.txt .* in .*empty; point babi_source .* or --babi-dir/,
  ],
  [
    "data",
    [...data, "--seed", "0", "--out", `${tmp}/no/dir/p.jsonl`],
    2,
    /--out .*no\/dir\/p\.jsonl: No such file or directory/,
  ],
  [
    "data",
    [...data, ...out, "--segment-tokens", "x"],
    2,
    /--segment-tokens must be an integer, got "x"/,
  ],
  ["generate", ["--prompt", "hi"], 2, /--model PATH is required/],
  ["generate", [...gen, "--max-tokens", "-3"], 2, /--max-tokens must be an integer ≥ 0, got -3/],
  [
    "generate",
    [...gen, "--max-tokens", "100000000"],
    1,
    /--max-tokens 100000000: .* exceed the model's 4096 positions; give --max-tokens \d+ or less/,
  ],
  [
    "generate",
    ["--model", `${tmp}/nomodel`, "--prompt", "hi"],
    1,
    /model .*nomodel: does not exist/,
  ],
  ["generate", [...gen, "--adapter", emptyDir], 1, /empty\/adapter_config\.json: cannot read/],
  ["ask", ["--context", "doc.txt"], 2, /--meta RUN_FOLDER\|DIR is required/],
  [
    "ask",
    ["--meta", `${tmp}/nometa`, "--context", file],
    1,
    /--meta .*nometa: not a folder \(give a run folder or an export\)/,
  ],
  [
    "ask",
    ["--meta", emptyDir, "--context", file],
    1,
    /neither a run folder \(stages\.json\) nor an export \(perk_meta\.json\)/,
  ],
  [
    "ask",
    ["--meta", emptyDir, "--context", file, "--cell", "x"],
    2,
    /--cell must be an integer ≥ 0, got x/,
  ],
  ["export", [], 2, /give exactly one RUN_FOLDER/],
  [
    "export",
    [emptyDir, "--peft", `${tmp}/e`],
    1,
    /stages\.json does not exist: give a run folder made by `\.\/perk experiment`/,
  ],
  ["export", [emptyDir], 2, /--peft DIR is required/],
  [
    "probe",
    ["--model", "tiny", "--rates", "abc"],
    2,
    /--rates "abc": "abc" is not a number > 0; give a comma list/,
  ],
];

async function run([tool, args]: Case) {
  const p = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}${tools[tool]}`, ...args],
    cwd: root,
    env: {
      XDG_RUNTIME_DIR: "/tmp",
      PERK_RUNS: `${tmp}/runs`,
      PERK_CACHE: `${tmp}/cache`,
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: p.code, text: dec.decode(p.stdout) + dec.decode(p.stderr) };
}

Deno.test(`${CASES.length} bad inputs through the real CLIs: exit status, a message naming the input and the fix, no stack trace`, async () => {
  assert.ok(CASES.length >= 30);
  const failures: string[] = [];
  for (let i = 0; i < CASES.length; i += 4) {
    const batch = CASES.slice(i, i + 4);
    const results = await Promise.all(batch.map(run));
    batch.forEach((c, k) => {
      const { code, text } = results[k];
      const what = `${c[0]} ${c[1].join(" ")}`;
      if (code !== c[2]) failures.push(`${what}: exit ${code}, want ${c[2]}\n${text}`);
      if (!c[3].test(text)) failures.push(`${what}: message does not match ${c[3]}\n${text}`);
      if (/^\s+at .*:\d+:\d+\)?$/m.test(text) || /Uncaught/.test(text)) {
        failures.push(`${what}: printed a stack trace\n${text}`);
      }
    });
  }
  assert.deepEqual(failures, []);
  assert.equal([...Deno.readDirSync(tmp)].some((e) => e.name === "runs"), false, "no run folder");
  Deno.removeSync(tmp, { recursive: true });
});
