/** Generated problems for tests, counted in GPT-2 tokens. */
import type { BabiTask } from "../pipeline/data/babi_world.ts";
import { generateProblems, type Problem, type ProblemSpec } from "../pipeline/data/problems.ts";
import { gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";

/** One BabiLong test problem of `task` at 1K tokens; `over` changes the rest of its spec. */
export function babilongTestProblem(
  task: BabiTask,
  seed: number,
  over: Partial<ProblemSpec> = {},
): Problem {
  const spec: ProblemSpec = {
    dataset: "babilong",
    task,
    length: "1k",
    split: "test",
    n: 1,
    seed,
    ...over,
  };
  return generateProblems(spec, gpt2Tokenizer())[0];
}
