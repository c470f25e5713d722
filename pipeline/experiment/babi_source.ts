/**
 * The `babi_source` key: where BabiLong's bAbI stories come from — "simulator" (our bAbI
 * world, pipeline/data/babi_world.ts) or a folder of the released bAbI files. The folder is
 * checked while the graph is built, so a wrong one stops the run before any stage runs, with
 * the key named, instead of failing deep inside the data stage.
 */
import { resolve } from "node:path";
import { Effect } from "effect";
import { babiFileName } from "../data/babi_reader.ts";
import { BABI_TASKS } from "../data/babi_world.ts";
import { ConfigError } from "./errors.ts";

export const SIMULATOR = "simulator";

const EXAMPLE = "the en-10k release has both files of every task";

function stat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The source as problem specs carry it: "simulator", or the folder as an absolute path
 * (relative folders resolve against the working directory: the repository root under
 * `./perk` and `deno task`), so the problems' cache key never depends on where a run was
 * started from. Each task needs both released files: training and validation stories come
 * from `_train.txt`, test stories from `_test.txt`. The data reader would fall back to the
 * other file when one is missing, which would make test stories training stories — so a
 * missing file is an error here rather than a silent overlap.
 */
export function resolveBabiSource(
  c: { readonly babi_source: string; readonly dataset: string; readonly tasks: readonly string[] },
): Effect.Effect<string, ConfigError> {
  const source = c.babi_source;
  if (source === SIMULATOR) return Effect.succeed(SIMULATOR);
  const fail = (why: string) =>
    Effect.fail(
      new ConfigError({ message: `parameter "babi_source" = "${source}": ${why}` }),
    );
  if (c.dataset !== "babilong") {
    return fail(
      `released bAbI files feed the babilong dataset only (this config uses ${c.dataset}); ` +
        `set babi_source=${SIMULATOR}`,
    );
  }
  const dir = resolve(Deno.cwd(), source);
  const info = stat(dir);
  if (!info?.isDirectory) {
    return fail(
      `${dir} is ${info ? "not a folder" : "missing"} (relative folders resolve against the ` +
        `working directory, ${Deno.cwd()}); give a folder of released bAbI files ` +
        `(qaN_…_train.txt and qaN_…_test.txt; ${EXAMPLE}) or set babi_source=${SIMULATOR}`,
    );
  }
  const missing: string[] = [];
  for (const name of c.tasks) {
    const task = BABI_TASKS.find((t) => t === name);
    if (!task) continue; // not a bAbI task: the tasks check reports it
    for (const split of ["train", "test"] as const) {
      const file = babiFileName(task, split);
      if (!stat(`${dir}/${file}`)?.isFile) missing.push(file);
    }
  }
  if (missing.length) {
    return fail(
      `${dir} lacks ${missing.join(", ")}; each task needs its _train.txt (training and ` +
        `validation stories) and its _test.txt (test stories, kept apart from training ` +
        `stories). Put the released files there (${EXAMPLE}) or set babi_source=${SIMULATOR}`,
    );
  }
  return Effect.succeed(dir);
}
