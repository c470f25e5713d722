/**
 * Reader for the released bAbI text format (`N sentence` lines; questions are
 * `N question\tanswer\tsupporting line numbers`; N restarts at 1 for each story). Yields the
 * same BabiSample as the simulator, so either can feed the haystack builder.
 */
import type { BabiSample, BabiTask } from "./babi_world.ts";
import { DataInputError } from "./errors.ts";

export function parseBabi(text: string, task: BabiTask, where = "bAbI file"): BabiSample[] {
  const samples: BabiSample[] = [];
  let facts: string[] = [];
  let lineToFact = new Map<number, number>();
  text.split("\n").forEach((raw, lineNo) => {
    const line = raw.trimEnd();
    if (!line) return;
    const m = /^(\d+) (.*)$/.exec(line);
    if (!m) {
      throw new DataInputError(
        `${where}:${lineNo + 1}: expected "N text", got ${JSON.stringify(line)}`,
      );
    }
    const n = Number(m[1]);
    if (n === 1) {
      facts = [];
      lineToFact = new Map();
    }
    const parts = m[2].split("\t");
    if (parts.length === 1) {
      lineToFact.set(n, facts.push(parts[0].trim()) - 1);
      return;
    }
    if (parts.length < 3) {
      throw new DataInputError(
        `${where}:${lineNo + 1}: a question needs "question\\tanswer\\tids"`,
      );
    }
    const support = parts[2].trim().split(/\s+/).map((s) => {
      const idx = lineToFact.get(Number(s));
      if (idx === undefined) {
        throw new DataInputError(`${where}:${lineNo + 1}: supporting line ${s} is not a fact`);
      }
      return idx;
    });
    samples.push({
      task,
      facts: facts.slice(),
      question: parts[0].trim(),
      answer: parts[1].trim(),
      support: support.sort((a, b) => a - b),
    });
  });
  return samples;
}

/** File name prefixes of the released tasks. */
const FILE_PREFIX: Record<BabiTask, string> = {
  qa1: "qa1_single-supporting-fact",
  qa2: "qa2_two-supporting-facts",
  qa3: "qa3_three-supporting-facts",
};

/** The released file of a task's split, e.g. "qa1_single-supporting-fact_train.txt". */
export const babiFileName = (task: BabiTask, split: "train" | "test"): string =>
  `${FILE_PREFIX[task]}_${split}.txt`;

/**
 * Samples of `task` from a released bAbI folder (e.g. ../shared/data/babi/en-10k): the
 * `_train` or `_test` file, whichever `split` names, falling back to the other one.
 */
export function readBabiFolder(dir: string, task: BabiTask, split: "train" | "test"): BabiSample[] {
  const names = [
    babiFileName(task, split),
    babiFileName(task, split === "train" ? "test" : "train"),
  ];
  for (const name of names) {
    let text: string;
    try {
      text = Deno.readTextFileSync(`${dir}/${name}`);
    } catch {
      continue;
    }
    const samples = parseBabi(text, task, `${dir}/${name}`);
    if (samples.length) return samples;
  }
  throw new DataInputError(
    `babi source: no ${names.join(" or ")} with questions in ${dir}; point babi_source ` +
      `(experiments) or --babi-dir (deno task data) at a folder of released bAbI files ` +
      `(e.g. ../shared/data/babi/en-10k), or use the simulator`,
  );
}
