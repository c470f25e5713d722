/**
 * Run folders: runs/<experiment>/<time>-<key>/ holding config.yaml, stages.json, env.json,
 * log.txt, metrics.jsonl, results.csv, results.md, predictions.jsonl and the figures. <time> is UTC
 * and sorts lexically, so the latest run is the last name; <key> is the hash of the
 * resolved config.
 */
import { writeTextAtomic } from "./cache.ts";

/** Where runs live: $PERK_RUNS, else runs/ at the repository root. */
export function defaultRunsRoot(): string {
  return Deno.env.get("PERK_RUNS") ?? new URL("../../runs", import.meta.url).pathname;
}

/** "2025-06-01T12-30-05Z": ISO time with ':' replaced (valid in folder names everywhere). */
export function runStamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

/** One node of a run's plan, as stages.json records it (its output is in the cache by key). */
export interface StageRecord {
  readonly stage: string;
  readonly key: string;
  readonly params: unknown;
  /** Input name → upstream key. */
  readonly upstream: Readonly<Record<string, string>>;
}

/** A run folder's stages.json; a clear error when it is missing or malformed. */
export function readStages(runDir: string): StageRecord[] {
  const path = `${runDir}/stages.json`;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(
      e instanceof Deno.errors.NotFound
        ? `${path} does not exist: give a run folder made by \`./perk experiment\` ` +
          "(runs before 2026-12-07 have none: rerun the experiment; cached stages are reused)"
        : `${path}: ${(e as Error).message}`,
    );
  }
  const j = JSON.parse(text) as { nodes?: StageRecord[] };
  if (!Array.isArray(j.nodes)) throw new Error(`${path}: no "nodes" list; the file is damaged`);
  return j.nodes;
}

export class RunDir {
  readonly #enc = new TextEncoder();
  private constructor(readonly path: string) {}

  /** `scope` (e.g. "qa1-perk": tasks or methods changed from the experiment's) ends the name. */
  static async create(
    root: string,
    experiment: string,
    key: string,
    scope = "",
  ): Promise<RunDir> {
    const tail = scope.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "");
    const base = `${root}/${experiment}/${runStamp()}-${key.slice(0, 12)}${tail ? `-${tail}` : ""}`;
    // Two runs started in the same second with the same config get distinct folders.
    for (let i = 0;; i++) {
      const path = i === 0 ? base : `${base}-${i}`;
      try {
        await Deno.mkdir(`${root}/${experiment}`, { recursive: true });
        await Deno.mkdir(path);
        return new RunDir(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
    }
  }

  /** Append one line to log.txt (appends of whole lines; a crash loses at most one). */
  log(line: string): void {
    Deno.writeFileSync(`${this.path}/log.txt`, this.#enc.encode(`${line}\n`), { append: true });
  }

  /** Append one record to metrics.jsonl. */
  metric(record: Readonly<Record<string, unknown>>): void {
    Deno.writeFileSync(
      `${this.path}/metrics.jsonl`,
      this.#enc.encode(`${JSON.stringify(record)}\n`),
      {
        append: true,
      },
    );
  }

  /** Write a whole file atomically (config, env, results, figures). */
  write(name: string, text: string): Promise<void> {
    return writeTextAtomic(`${this.path}/${name}`, text);
  }
}

/** The newest run of `experiment` that has results.csv, or undefined. */
export async function latestRun(root: string, experiment: string): Promise<string | undefined> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${root}/${experiment}`)) {
      if (e.isDirectory) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  for (const name of names.sort().reverse()) {
    const path = `${root}/${experiment}/${name}`;
    try {
      await Deno.stat(`${path}/results.csv`);
      return path;
    } catch { /* an unfinished run: look further back */ }
  }
  return undefined;
}
