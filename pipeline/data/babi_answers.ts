/**
 * What kind of answer a prediction to a bAbI question is, read against the story's own facts:
 * right; another room of the one asked about (QA1: the person asked — an earlier or later
 * move, a recency error; QA2/QA3: a room of someone who took or dropped the object); another
 * room the story names (the link to the one asked is missing — what the question-blind
 * control `context-mode` answers is of this kind or the first); no room of the story; empty.
 * The accuracy says how often a method is right; these kinds say why it is wrong
 * (pipeline/perk/README.md: PERK's errors moved from the third kind to the second when the
 * base was trained for test-time training).
 */
import { ACTORS, DROP_VERBS, GET_VERBS, LOCATIONS, MOVE_VERBS, OBJECTS } from "./babi_world.ts";
import { extractOutput, normalizeAnswer } from "./scorers.ts";

export const ANSWER_KINDS = [
  "right",
  "asked-other",
  "story-other",
  "outside-story",
  "empty",
] as const;
export type AnswerKind = typeof ANSWER_KINDS[number];

/** Zero of every kind (the Record type checks that none is missing). */
export function noKinds(): Record<AnswerKind, number> {
  return { "right": 0, "asked-other": 0, "story-other": 0, "outside-story": 0, "empty": 0 };
}

/** Column headings for reports, in ANSWER_KINDS order. */
export const ANSWER_KIND_LABELS: Readonly<Record<AnswerKind, string>> = {
  "right": "right",
  "asked-other": "another room of the one asked",
  "story-other": "another room of the story",
  "outside-story": "no room of the story",
  "empty": "empty",
};

const alt = (xs: readonly string[]) => xs.join("|");
// The released bAbI forms (babi_world.ts and the real files): "Mary went back to the kitchen",
// "John picked up the milk there", "Sandra put down the apple".
const MOVE = new RegExp(
  `\\b(${alt(ACTORS)}) (?:${alt([...MOVE_VERBS].sort((a, b) => b.length - a.length))}) ` +
    `the (${alt(LOCATIONS)})\\b`,
  "g",
);
const HANDLE = new RegExp(
  `\\b(${alt(ACTORS)}) (?:${alt([...GET_VERBS, ...DROP_VERBS])}) ` +
    `the (${alt(OBJECTS)})\\b`,
  "g",
);
const ASK_ACTOR = new RegExp(`Where is (${alt(ACTORS)})\\?`);
const ASK_OBJECT = new RegExp(`Where (?:is|was) the (${alt(OBJECTS)})\\b`);

/**
 * The kind of `prediction` (as PERK's metric reads it: `<output>` text, normalised) for a bAbI
 * question over `context`; undefined when `question` is not a bAbI location question.
 */
export function answerKind(
  context: string,
  question: string,
  answer: string,
  prediction: string,
): AnswerKind | undefined {
  const actor = question.match(ASK_ACTOR)?.[1];
  const object = actor ? undefined : question.match(ASK_OBJECT)?.[1];
  if (!actor && !object) return undefined;
  const said = normalizeAnswer(extractOutput(prediction));
  if (said === "") return "empty";
  if (said === normalizeAnswer(answer)) return "right";
  const asked = new Set<string>(actor ? [actor] : []);
  if (object) {
    for (const m of context.matchAll(HANDLE)) if (m[2] === object) asked.add(m[1]);
  }
  let story = false;
  for (const m of context.matchAll(MOVE)) {
    if (m[2] !== said) continue;
    if (asked.has(m[1])) return "asked-other";
    story = true;
  }
  return story ? "story-other" : "outside-story";
}
