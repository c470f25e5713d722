/**
 * The baselines' view of a problem: the whole context in the prompt (BabiLong's instruction,
 * `examples` worked examples, the answer-form instruction, `<context>…</context>`, the
 * question, then "Answer:") and the answer the fine-tuned model learns to write.
 *
 * The answer is BabiLong's required sentence with the answer span tagged, e.g.
 * "The most recent location of Mary is <output>kitchen</output>." — BabiLong's scorer reads the
 * sentence (it cuts at the first "." and looks for the label), and PERK's exact match (the
 * experiments' default metric) reads the text inside <output>…</output>, so the same
 * predictions score under every metric. Student Records answers are the tagged answer alone.
 */
import type { BabiTask } from "../data/babi_world.ts";
import { inContextPrompt, type Problem } from "../data/problems.ts";
import { babilongAnswer } from "../data/prompts.ts";
import { promptIds } from "../model/load.ts";
import type { Model } from "../model/weights.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

/** One problem in tokens: the prompt, and the answer ids (EOS last) the loss is taken on. */
export interface IcrExample {
  readonly id: string;
  readonly prompt: Int32Array;
  readonly answer: Int32Array;
}

/** The in-context prompt text, ending in "Answer:" (BabiLong's examples answer after it). */
export function icrPromptText(p: Problem, examples: number): string {
  const text = inContextPrompt(p, examples);
  return /Answer:\s*$/.test(text) ? text.trimEnd() : `${text}\nAnswer:`;
}

/** The answer text the fine-tuned baseline writes (leading space: it follows "Answer:"). */
export function icrAnswerText(p: Problem): string {
  const tagged = `<output>${p.answerTarget}</output>`;
  return p.dataset === "babilong"
    ? " " + babilongAnswer(p.task as BabiTask, p.question, tagged)
    : " " + tagged;
}

/** Prompt and answer ids of a problem for `model` (BOS as the model expects it). */
export function encodeIcr(
  model: Model,
  tok: TextTokenizer,
  p: Problem,
  examples: number,
  eos = model.config.eosIds[0] ?? tok.eosId,
): IcrExample {
  return {
    id: p.id,
    prompt: Int32Array.from(promptIds(model, tok, icrPromptText(p, examples))),
    answer: Int32Array.from([...tok.encode(icrAnswerText(p)), eos]),
  };
}
