/**
 * Prompts and targets. PERK: the question prompt (no context: the context is in the LoRA)
 * and `<support>…</support>\n<output>…</output>` targets for BabiLong, answer-only for
 * Student Records. Baselines: the in-context prompt (context + question) in BabiLong's
 * instruction/answer format.
 */
import { type BabiTask, generateBabiSamples } from "./babi_world.ts";

/** PERK's question prompt; the training sequence is `${prompt} ${target}<eos>`. */
export function perkPrompt(documentCount: number, question: string): string {
  return `You have memorized ${documentCount} documents.\n${question}\nAnswer:`;
}

/** PERK's BabiLong target: supporting facts first, then the answer. */
export function supportTarget(support: readonly string[], answer: string): string {
  return `<support>${support.join("\n")}</support>\n<output>${answer}</output>`;
}

/** BabiLong's instruction for the item tasks (QA2, QA3: items carried and dropped). */
const ITEM_INSTRUCTION = "I give you context with the facts about locations and actions of " +
  "different persons hidden in some random text and a question. You need to answer the " +
  "question based only on the information from the facts. If a person got an item in the " +
  "first location and travelled to the second location the item is also in the second " +
  "location. If a person dropped an item in the first location and moved to the second " +
  "location the item remains in the first location.";

/** BabiLong's instructions (paraphrased task rules) and required answer forms. */
const BABILONG: Record<BabiTask, { instruction: string; postPrompt: string }> = {
  qa1: {
    instruction: "I will give you context with the facts about positions of different persons " +
      "hidden in some random text and a question. You need to answer the question based only " +
      "on the information from the facts. If a person was in different locations, use the " +
      "latest location to answer the question.",
    postPrompt: "Always return your answer in the following format: The most recent location " +
      "of 'person' is 'location'. Do not write anything else after that.",
  },
  qa2: {
    instruction: ITEM_INSTRUCTION,
    postPrompt: "Always return your answer in the following format: The 'item' is in " +
      "'location'. Do not write anything else after that.",
  },
  qa3: {
    instruction: ITEM_INSTRUCTION,
    postPrompt: "Always return your answer in the following format: Before the $location_1$ " +
      "the $item$ was in the $location_2$. Do not write anything else after that.",
  },
};

/** An answer in BabiLong's required sentence form (what baselines are asked to write). */
export function babilongAnswer(task: BabiTask, question: string, answer: string): string {
  if (task === "qa1") {
    const who = /^Where is (\w+)\?$/.exec(question)?.[1] ?? "the person";
    return `The most recent location of ${who} is ${answer}.`;
  }
  if (task === "qa2") {
    const what = /^Where is the (\w+)\?$/.exec(question)?.[1] ?? "item";
    return `The ${what} is in ${answer}.`;
  }
  const m = /^Where was the (\w+) before the (\w+)\?$/.exec(question);
  return `Before the ${m?.[2] ?? "place"} the ${m?.[1] ?? "item"} was in the ${answer}.`;
}

const exampleCache = new Map<string, string>();

/**
 * `count` worked examples for the prompt, made by our simulator (fixed seed; the shortest
 * stories of the first 40, so the prompt stays small).
 */
export function babilongExamples(task: BabiTask, count: number): string {
  const key = `${task}/${count}`;
  const hit = exampleCache.get(key);
  if (hit !== undefined) return hit;
  const samples = generateBabiSamples(task, 40, 20250701)
    .sort((a, b) => a.facts.length - b.facts.length)
    .slice(0, count);
  const text = samples.map((s) =>
    `<example>\n${s.facts.join(" ")}\n\nQuestion: ${s.question}\nAnswer: ` +
    `${babilongAnswer(task, s.question, s.answer)}\n</example>`
  ).join("\n");
  exampleCache.set(key, text);
  return text;
}

/** BabiLong's in-context prompt: instruction, examples, answer form, context, question. */
export function babilongPrompt(
  task: BabiTask,
  context: string,
  question: string,
  examples = 2,
): string {
  const p = BABILONG[task];
  const ex = examples > 0 ? `${babilongExamples(task, examples)}\n\n` : "";
  return `${p.instruction}\n\n${ex}${p.postPrompt}\n\n<context>\n${context}\n</context>\n\n` +
    `Question: ${question}`;
}

/** In-context prompt for Student Records baselines. */
export function recordsPrompt(context: string, question: string): string {
  return `Here is a database of student records, one per line.\n\n<context>\n${context}\n` +
    `</context>\n\nQuestion: ${question}\nAnswer:`;
}
