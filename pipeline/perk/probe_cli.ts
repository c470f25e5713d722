/**
 * `deno task probe --model DIR|tiny [--task qa1] [--length 1k] [--n 50] [--steps 4]
 * [--rates 1e-4,3e-4,1e-3,3e-3,1e-2] [--rank 16] [--alpha 16] [--split validation] …`:
 * the inner-rate probe (probe.ts) on BabiLong problems, printed as a markdown table row by row
 * as each rate finishes; one progress line per rate on stderr. It picks a hyperparameter, so it reads validation (or
 * training) problems, never test problems.
 */
import { createRuntime } from "../../kernels/runtime/device.ts";
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import { BABI_TASKS, type BabiTask } from "../data/babi_world.ts";
import { generateProblems } from "../data/problems.ts";
import { isLengthLabel, LENGTH_FORMS } from "../experiment/fields.ts";
import { loadModel, loadTokenizerFor } from "../model/load.ts";
import { callerPath, looksLikePath, parseFlags, UsageError } from "../cli_helpers.ts";
import { probeInnerRates, type ProbeResult, type ProbeRow } from "./probe.ts";
import { TINY_BASE } from "../base/base_stage.ts";

export const USAGE =
  `usage: deno task probe --model DIR|tiny [--task qa1|qa2|qa3] [--length 1k] [--n 50]
         [--steps 4] [--rates 1e-4,3e-4,1e-3,3e-3,1e-2] [--rank 16] [--alpha 16]
         [--split validation|train] [--max-new-tokens 96] [--seed 0] [--groups 1]
         [--segment-tokens 256]

For each inner rate: N test-time AdamW steps of a fresh LoRA (PEFT init, that rate for every
step and tensor, the untrained weighting model) on each problem's context, as PERK encodes;
prints the context loss and the fact-token loss before → after, and the accuracy of answering
from the question alone (test-time training without meta-training), beside the control that
answers without encoding.

  --model DIR|tiny    tiny: the shipped base (fixtures/models/tiny-base); or a Hugging Face
                      model directory (config.json + model.safetensors, with
                      tokenizer.json or compact_vocab.json), e.g. one pretrain.ts wrote
  --task T            bAbI task (default qa1)
  --length L          context length: ${LENGTH_FORMS}; counted in GPT-2 tokens as the
                      experiments count it (default 1k)
  --n N               problems (default 50)
  --steps N           inner steps (default 4)
  --rates R,R,…       constant inner rates to compare (default 1e-4,3e-4,1e-3,3e-3,1e-2)
  --rank R, --alpha A LoRA rank and alpha; scale alpha/√rank (default 16, 16)
  --split S           validation or train problems (default validation; never test)
  --max-new-tokens N  greedy answer budget (default 96, the cpu profile's)
  --seed S            problem seed and LoRA init seed (default 0)
  --groups K          accumulation groups over the segments (exact; less memory; default 1)
  --segment-tokens T  tokens per context segment (default 256)
  --help              this text
`;

export { UsageError };

export interface ProbeArgs {
  readonly model: string;
  readonly task: BabiTask;
  readonly length: string;
  readonly n: number;
  readonly steps: number;
  readonly rates: number[];
  readonly rank: number;
  readonly alpha: number;
  readonly split: "validation" | "train";
  readonly maxNewTokens: number;
  readonly seed: number;
  readonly groups: number;
  readonly segmentTokens: number;
}

const DEFAULT_RATES = "1e-4,3e-4,1e-3,3e-3,1e-2";

function integer(flag: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) {
    throw new UsageError(`--${flag} "${raw}": give an integer ≥ ${min}`);
  }
  return Number(raw);
}

function positive(flag: string, raw: string, example: string): number {
  const v = Number(raw.trim());
  if (raw.trim() === "" || !Number.isFinite(v) || v <= 0) {
    throw new UsageError(`--${flag} "${raw}": give a number > 0 (e.g. ${example})`);
  }
  return v;
}

export function parseProbeArgs(argv: string[]): ProbeArgs | "help" {
  const names = [
    "model",
    "task",
    "length",
    "n",
    "steps",
    "rates",
    "rank",
    "alpha",
    "split",
    "max-new-tokens",
    "seed",
    "groups",
    "segment-tokens",
  ];
  const v: Record<string, string | boolean | undefined> = parseFlags(argv, {
    ...Object.fromEntries(names.map((f) => [f, { type: "string" as const }])),
    help: { type: "boolean" },
  }).values;
  if (v.help === true) return "help";
  const s = (k: string) => (typeof v[k] === "string" ? v[k] : undefined);
  const given = s("model");
  if (!given) throw new UsageError("--model DIR|tiny is required");
  // "tiny": the shipped base the cpu-profile experiments start from.
  const model = given === "tiny" ? TINY_BASE.dir : given;
  const task = BABI_TASKS.find((t) => t === (s("task") ?? "qa1"));
  if (!task) throw new UsageError(`--task "${s("task")}": use ${BABI_TASKS.join(", ")}`);
  const length = s("length") ?? "1k";
  if (!isLengthLabel(length)) throw new UsageError(`--length "${length}": use ${LENGTH_FORMS}`);
  const split = s("split") ?? "validation";
  if (split === "test") {
    throw new UsageError(
      "--split test: the probe chooses a hyperparameter, so it must not see test problems; " +
        "use validation (default) or train",
    );
  }
  if (split !== "validation" && split !== "train") {
    throw new UsageError(`--split "${split}": use validation or train`);
  }
  const ratesRaw = s("rates") ?? DEFAULT_RATES;
  const rates = ratesRaw.split(",").map((r) => {
    try {
      return positive("rates", r, DEFAULT_RATES);
    } catch {
      throw new UsageError(
        `--rates "${ratesRaw}": "${r}" is not a number > 0; give a comma list such as ` +
          DEFAULT_RATES,
      );
    }
  });
  return {
    model,
    task,
    length,
    n: integer("n", s("n"), 50, 1),
    steps: integer("steps", s("steps"), 4, 1),
    rates,
    rank: integer("rank", s("rank"), 16, 1),
    alpha: s("alpha") === undefined ? 16 : positive("alpha", s("alpha") ?? "", "16"),
    split,
    maxNewTokens: integer("max-new-tokens", s("max-new-tokens"), 96, 1),
    seed: integer("seed", s("seed"), 0, 0),
    groups: integer("groups", s("groups"), 1, 1),
    segmentTokens: integer("segment-tokens", s("segment-tokens"), 256, 16),
  };
}

const loss = (x: number) => (Number.isNaN(x) ? "–" : x.toFixed(3));
const pct = (correct: number, n: number) =>
  `${correct}/${n} (${(n ? (100 * correct) / n : 0).toFixed(1)}%)`;
const change = (p: { before: number; after: number }) =>
  `${loss(p.before)} → ${loss(p.after)} (×${(p.after / p.before).toFixed(3)})`;

/** What was measured, the table's head and the no-encode control row (markdown lines). */
export function probeHead(a: ProbeArgs, r: ProbeResult): string[] {
  return [
    `Inner-rate probe: ${a.model}, ${a.task} @ ${a.length} (${a.split}, n = ${a.n}, seed ` +
    `${a.seed}), N = ${a.steps} steps, LoRA rank ${a.rank} alpha ${a.alpha} (scale ` +
    `${r.scale.toFixed(3)}), metric perk-em.`,
    `Losses: mean next-token NLL in nats, per problem then over problems; ${r.tokens.context} ` +
    `context tokens, ${r.tokens.facts} of them in the story's facts ("X Event k: …"), ` +
    `${r.tokens.support} in the supporting facts${
      r.unlocated ? `; ${r.unlocated} facts not located in the tokens` : ""
    }.`,
    `Token weights: φ₀ gives every token ${r.tokenWeight.toFixed(3)} (W2 = 0: softplus₃(0) = ` +
    `ln2/3); AdamW ignores a constant gradient scale, so a rate is about how far each LoRA ` +
    `entry moves per step.`,
    "",
    "| inner rate | context loss before → after | fact loss before → after | support loss " +
    "before → after | TTT accuracy |",
    "| ---: | --- | --- | --- | --- |",
    `| no encode (θ₀) | ${loss(r.before.context)} | ${loss(r.before.facts)} | ${
      loss(r.before.support)
    } | ${pct(r.control.correct, r.control.n)} |`,
  ];
}

/** One rate's row of the table. */
export const probeRow = (row: ProbeRow): string =>
  `| ${row.rate.toExponential()} | ${change(row.context)} | ${change(row.facts)} | ${
    change(row.support)
  } | ${pct(row.correct, row.n)} |`;

/** The whole result as markdown. */
export const probeTable = (a: ProbeArgs, r: ProbeResult): string =>
  [...probeHead(a, r), ...r.rows.map(probeRow)].join("\n");

/** Load the model, build the problems, run the probe (progress through `log`, as probe.ts). */
export async function runProbe(
  a: ProbeArgs,
  rt: Runtime,
  log: (line: string, sofar: ProbeResult) => void = () => {},
): Promise<ProbeResult> {
  let model, tok;
  try {
    const path = looksLikePath(a.model) ? callerPath(a.model) : a.model;
    model = loadModel(path);
    tok = loadTokenizerFor(path, model);
  } catch (e) {
    throw new UsageError(`--model ${a.model}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let problems;
  try {
    problems = generateProblems({
      dataset: "babilong",
      task: a.task,
      length: a.length,
      split: a.split,
      n: a.n,
      seed: a.seed,
      format: "perk",
      tokenizer: "gpt2",
      segmentTokens: a.segmentTokens,
    });
  } catch (e) {
    throw new UsageError(
      `--task ${a.task} --length ${a.length}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  return await probeInnerRates(rt, model, tok, problems, {
    rank: a.rank,
    alpha: a.alpha,
    steps: a.steps,
    rates: a.rates,
    maxNewTokens: a.maxNewTokens,
    seed: a.seed,
    groups: a.groups,
  }, log);
}

/** The command: returns the exit status (0 ok, 2 bad flags). */
export async function main(argv: string[]): Promise<number> {
  let a;
  try {
    a = parseProbeArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`probe: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (a === "help") {
    console.log(USAGE);
    return 0;
  }
  const rt = await createRuntime();
  try {
    // Rows are printed as they finish: a run cut short still leaves its finished rows.
    await runProbe(a, rt, (line, sofar) => {
      console.error(`probe: ${line}`);
      const last = sofar.rows.at(-1);
      console.log(last ? probeRow(last) : probeHead(a, sofar).join("\n"));
    });
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`probe: ${e.message}`);
    return 2;
  } finally {
    rt.destroy();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
