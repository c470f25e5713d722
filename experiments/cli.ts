/**
 * `deno task experiment <name> [options]` runs a declared experiment;
 * `deno task results <name> [--csv]` prints its latest results table (or the CSV's path).
 * See USAGE. Exit status: 0 done, 1 a stage (or the device, cache or run folder) failed,
 * 2 bad arguments or configuration, 130 interrupted (finished stages stay cached; the
 * running stage stops at its next step, and a second Ctrl-C quits at once).
 */
import { Cause, Effect, Exit, Option } from "effect";
import { createRuntime } from "../kernels/runtime/device.ts";
import { Gpu } from "../kernels/runtime/gpu.ts";
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { StageCache } from "../pipeline/experiment/cache.ts";
import { type Profile, PROFILES, readConfigFile } from "../pipeline/experiment/config.ts";
import { errorText } from "../pipeline/experiment/errors.ts";
import { consoleProgress, Progress } from "../pipeline/experiment/progress.ts";
import { defaultRunsRoot, latestRun } from "../pipeline/experiment/run_dir.ts";
import {
  type AdapterInfo,
  dryRunSession,
  runSession,
  type SessionOptions,
} from "../pipeline/experiment/session.ts";
import { defaultCacheRoot } from "../pipeline/experiment/cache.ts";
import { CONSTRAINTS, DEFAULTS, FIELDS } from "./defaults.ts";
import { callerPath, looksLikePath } from "../pipeline/cli_helpers.ts";
import { calibration } from "../pipeline/perk/calibrate.ts";
import { inspectModel } from "../pipeline/model/load.ts";
import { methodRegistry } from "./methods.ts";
import { EXPERIMENTS } from "./registry.ts";

export const USAGE = `usage: deno task experiment <experiment> [options]
       deno task experiment --list
       deno task results <experiment> [--csv] [--runs DIR]

options:
  --profile cpu|paper     defaults (default: cpu on a fallback/CPU adapter, paper otherwise)
  --set key=value         override one parameter (repeatable)
  --config FILE.yaml      parameters from YAML (flat key: value, or a run's config.yaml)
  --force-config          accept a run's config.yaml from another experiment
  --recalibrate           measure this adapter's speed for time estimates again (it is
                          measured once and cached; a busy machine measures slow)
  --model PATH            base model directory (same as --set model=PATH)
  --sweep k=v1,v2 [k2=…]  run the grid of these values (shared stages computed once)
  --cache DIR             stage cache folder (default cache/, or $PERK_CACHE)
  --runs DIR              run folders (default runs/, or $PERK_RUNS)
  --force STAGE           recompute every node of STAGE even if cached (repeatable)
  --explain               say why each stage hits or misses the cache
  --dry-run               print the resolved config and the plan; run nothing
  --help`;

export interface CliArgs {
  readonly command: "run" | "results";
  readonly experiment?: string;
  readonly profile?: string;
  readonly sets: string[];
  readonly sweeps: string[];
  readonly force: string[];
  readonly config?: string;
  readonly cache?: string;
  readonly runs?: string;
  readonly explain: boolean;
  readonly dryRun: boolean;
  readonly forceConfig: boolean;
  readonly recalibrate: boolean;
  readonly csv: boolean;
  readonly list: boolean;
  readonly help: boolean;
}

export class UsageError extends Error {}

/** Keys whose values may be paths the caller typed (resolved against their directory). */
const PATH_KEYS = new Set(["model", "corpus", "babi_source"]);

/** `--set model=./m` → `model=/caller/dir/m`; other settings as they are. */
function callerSet(set: string): string {
  const i = set.indexOf("=");
  if (i < 0) return set;
  const key = set.slice(0, i).trim(), value = set.slice(i + 1).trim();
  // A model other than "tiny" is always a path; corpus and babi_source name built-ins too.
  const path = key === "model" ? value !== "tiny" : looksLikePath(value);
  return PATH_KEYS.has(key) && path ? `${key}=${callerPath(value)}` : set;
}

/** Flags that take one value, and the argument each sets. */
const VALUE_FLAGS = {
  "--profile": "profile",
  "--config": "config",
  "--cache": "cache",
  "--runs": "runs",
} as const;
/** Repeatable flags, and the list each value is appended to. */
const LIST_FLAGS = { "--set": "sets", "--force": "force" } as const;
/** Flags without a value, and the switch each turns on. */
const SWITCHES = {
  "--explain": "explain",
  "--dry-run": "dryRun",
  "--force-config": "forceConfig",
  "--recalibrate": "recalibrate",
  "--csv": "csv",
  "--list": "list",
  "--help": "help",
  "-h": "help",
} as const;

/** `flag` is one of the table's flags. */
const isFlag = <T extends object>(table: T, flag: string): flag is Extract<keyof T, string> =>
  Object.hasOwn(table, flag);

/** Parse argv (after the `run`/`results` word). `--sweep` takes every following key=value. */
export function parseCli(argv: readonly string[]): CliArgs {
  const [command, ...rest] = argv;
  if (command !== "run" && command !== "results") {
    throw new UsageError(`first argument must be run or results, got "${command ?? ""}"`);
  }
  const a: { -readonly [K in keyof CliArgs]: CliArgs[K] } = {
    command,
    sets: [],
    sweeps: [],
    force: [],
    explain: false,
    dryRun: false,
    forceConfig: false,
    recalibrate: false,
    csv: false,
    list: false,
    help: false,
  };
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    // "--flag=value" (for --sweep the value is itself "key=v1,v2": split at the first "=").
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = rest[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (isFlag(VALUE_FLAGS, flag)) a[VALUE_FLAGS[flag]] = value();
    else if (isFlag(LIST_FLAGS, flag)) a[LIST_FLAGS[flag]].push(value());
    else if (isFlag(SWITCHES, flag)) a[SWITCHES[flag]] = true;
    else if (flag === "--model") a.sets.push(`model=${value()}`);
    else if (flag === "--sweep") {
      a.sweeps.push(value());
      while (i + 1 < rest.length && !rest[i + 1].startsWith("--") && rest[i + 1].includes("=")) {
        a.sweeps.push(rest[++i]);
      }
    } else if (arg.startsWith("-")) throw new UsageError(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length > 1) {
    throw new UsageError(`one experiment at a time, got ${positional.join(", ")}`);
  }
  a.experiment = positional[0];
  return a;
}

function listing(): string {
  return [...EXPERIMENTS.values()].map((e) => `  ${e.name.padEnd(26)} ${e.title}`).join("\n");
}

function adapterInfo(rt: Runtime): AdapterInfo {
  const a = rt.adapter;
  const sub = a.subgroupMaxSize ? `, subgroups ${a.subgroupMinSize}-${a.subgroupMaxSize}` : "";
  return {
    line: `adapter: ${a.description}${a.vendor ? ` (${a.vendor}` : " ("}${
      a.architecture ? `/${a.architecture}` : ""
    })${rt.isCpuAdapter ? ", CPU/fallback" : ""}${sub}, features: ${
      a.features.join(" ") || "none"
    }`,
    record: a,
    isCpu: rt.isCpuAdapter,
  };
}

/** `results`: print the latest results.md table, or with --csv the CSV's path. */
async function results(args: CliArgs): Promise<number> {
  const root = args.runs ? callerPath(args.runs) : defaultRunsRoot();
  const run = await latestRun(root, args.experiment!);
  if (!run) {
    console.error(
      `no finished run of ${args.experiment} under ${root}; run: deno task experiment ${args.experiment}`,
    );
    return 1;
  }
  if (args.csv) console.log(`${run}/results.csv`);
  else console.log((await Deno.readTextFile(`${run}/results.md`)).trimEnd());
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseCli(argv);
  } catch (e) {
    console.error(`error: ${errorText(e)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(`${USAGE}\n\nexperiments:\n${listing()}`);
    return 0;
  }
  if (args.list) {
    console.log(listing());
    return 0;
  }
  const experiment = args.experiment ? EXPERIMENTS.get(args.experiment) : undefined;
  if (!experiment) {
    console.error(
      `error: ${
        args.experiment ? `unknown experiment "${args.experiment}"` : "name an experiment"
      }; experiments:\n${listing()}`,
    );
    return 2;
  }
  if (args.command === "results") return await results(args);
  const profile: Profile | undefined = PROFILES.find((p) => p === args.profile);
  if (args.profile !== undefined && profile === undefined) {
    console.error(
      `error: --profile "${args.profile}": allowed profiles are ${PROFILES.join(", ")}`,
    );
    return 2;
  }
  const inputProblem = checkInputs(args);
  if (inputProblem) {
    console.error(`error: ${inputProblem}`);
    return 2;
  }

  // Without an adapter only --dry-run goes on (it runs no stage).
  const device: { runtime?: Runtime; adapter: AdapterInfo; error?: string } = await createRuntime()
    .then(
      (runtime) => ({ runtime, adapter: adapterInfo(runtime) }),
      (e) => ({
        error: errorText(e),
        adapter: {
          line: `adapter: none (${errorText(e).split("\n")[0]})`,
          record: null,
          isCpu: true,
        },
      }),
    );
  const { runtime, adapter } = device;
  if (!runtime && !args.dryRun) {
    console.error(`error: ${device.error}`);
    return 1;
  }

  const file = args.config
    ? Effect.runSync(Effect.result(readConfigFile(callerPath(args.config))))
    : undefined;
  if (file && file._tag === "Failure") {
    console.error(`error: ${file.failure.message}`);
    runtime?.destroy();
    return 2;
  }
  // A run's config.yaml names its experiment: running it under another experiment's title
  // and folder would mislabel every result.
  const other = file?._tag === "Success" ? configExperiment(file.success.values) : undefined;
  if (other !== undefined && other !== experiment.name && !args.forceConfig) {
    console.error(
      `error: --config ${args.config} is experiment "${other}"'s config, not "${experiment.name}"'s; ` +
        `run \`./perk experiment ${other} --config ${args.config}\`, or add --force-config to ` +
        `run its parameters as ${experiment.name}`,
    );
    runtime?.destroy();
    return 2;
  }
  const cacheRoot = args.cache ? callerPath(args.cache) : defaultCacheRoot();
  const options: SessionOptions<Gpu> = {
    experiment,
    fields: FIELDS,
    defaults: DEFAULTS,
    constraints: CONSTRAINTS,
    // Time estimates scaled to this adapter: measured once, cached beside the stage cache.
    calibrate: runtime && !Deno.env.get("PERK_NO_CALIBRATION")
      ? async () => {
        const a = runtime.adapter;
        const c = await calibration(
          runtime,
          `${a.description}|${a.vendor}|${a.architecture}`,
          `${cacheRoot}/calibration.json`,
          (line) => console.log(line),
          args.recalibrate,
        );
        return { factor: c.speed, adapter: a.description || "this adapter" };
      }
      : undefined,
    registry: methodRegistry(),
    request: {
      profile,
      file: file?._tag === "Success" ? file.success : undefined,
      sets: args.sets.map(callerSet),
      sweeps: args.sweeps,
    },
    cache: new StageCache(cacheRoot),
    runsRoot: args.runs ? callerPath(args.runs) : defaultRunsRoot(),
    adapter,
    force: new Set(args.force),
    explain: args.explain,
    dryRun: args.dryRun,
    argv: ["experiment", ...argv.slice(1)],
  };
  const program = (
    runtime
      ? runSession(options).pipe(
        Effect.provideService(Gpu, runtime),
        // The device goes when the program ends — after an interrupted stage has stopped.
        Effect.ensuring(Effect.sync(() => runtime.destroy())),
      )
      : dryRunSession(options) // no adapter: only --dry-run gets here, and it runs no stage
  ).pipe(Effect.provideService(Progress, consoleProgress()));

  // Ctrl-C interrupts the run: the running stage stops at its next step and releases the
  // device, locks are released, finished stages stay cached. A second Ctrl-C quits at once.
  const abort = new AbortController();
  const onSigint = () => {
    if (abort.signal.aborted) Deno.exit(130);
    console.error("stopping at the running stage's next step (Ctrl-C again quits at once)");
    abort.abort();
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const exit = await Effect.runPromiseExit(program, { signal: abort.signal });
  Deno.removeSignalListener("SIGINT", onSigint);
  if (Exit.isSuccess(exit)) return 0;
  if (Cause.hasInterrupts(exit.cause)) {
    console.error("interrupted; finished stages are cached — run the same command to continue");
    return 130;
  }
  const failure = Cause.findErrorOption(exit.cause);
  if (Option.isNone(failure)) {
    // A defect (a bug, or a rejected promise outside any stage).
    console.error(`error: ${errorText(Cause.squash(exit.cause))}`);
    return 1;
  }
  const err = failure.value;
  switch (err._tag) {
    case "ConfigError":
      console.error(`error: ${err.message}`);
      return 2;
    case "StageError":
      console.error(`error: stage ${err.stage} failed: ${err.message}`);
      return 1;
    case "CacheError":
    case "RunDirError":
      console.error(`error: ${err.message}`);
      return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));

/** The `experiment:` a run's config.yaml names, if the file is one. */
function configExperiment(values: unknown): string | undefined {
  if (!values || typeof values !== "object" || Array.isArray(values)) return undefined;
  const e = "experiment" in values ? values.experiment : undefined;
  return typeof e === "string" ? e : undefined;
}

/**
 * Folders and model paths checked before anything starts (a run folder is not made for a
 * run that cannot begin): --cache and --runs must be folders (or not exist yet), a model path
 * must be a model folder (config.json) or a llama2.c .bin file.
 */
function checkInputs(args: CliArgs): string | undefined {
  const stat = (p: string) => {
    try {
      return Deno.statSync(p);
    } catch {
      return undefined;
    }
  };
  for (const [flag, v] of [["--cache", args.cache], ["--runs", args.runs]] as const) {
    if (v === undefined) continue;
    const s = stat(callerPath(v));
    if (s && !s.isDirectory) return `${flag} ${v} is a file; give a folder (made when missing)`;
  }
  for (const set of args.sets) {
    const m = /^model=(.*)$/.exec(set.trim());
    if (!m || m[1] === "tiny") continue;
    const path = callerPath(m[1]), s = stat(path);
    if (!s) return `--model ${m[1]}: no such file or folder (${path})`;
    if (s.isDirectory && !stat(`${path}/config.json`)) {
      const bins = [...Deno.readDirSync(path)]
        .filter((e) => e.isFile && e.name.endsWith(".bin") && !/^tok/.test(e.name))
        .map((e) => e.name);
      return `--model ${m[1]}: the folder has no config.json; ` +
        (bins.length
          ? `it holds the llama2.c checkpoint ${bins[0]}: give --model ${m[1]}/${bins[0]}`
          : "give a Hugging Face model folder or a llama2.c .bin file");
    }
    // Config, tokenizer and weight headers (names, shapes), not the weights.
    try {
      inspectModel(path);
    } catch (e) {
      return `--model ${m[1]}: ${errorText(e)}`;
    }
  }
  return undefined;
}
