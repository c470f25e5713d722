/**
 * Sentence splitting of haystack prose, and the filter that keeps distractors from
 * answering bAbI questions: sentences naming a bAbI actor, location or object are dropped.
 */
import { ACTORS, LOCATIONS, OBJECTS } from "./babi_world.ts";

/** Abbreviations whose period does not end a sentence. */
const ABBREVIATIONS = new Set([
  "mr",
  "mrs",
  "ms",
  "dr",
  "st",
  "jr",
  "sr",
  "gen",
  "gov",
  "sen",
  "rep",
  "hon",
  "col",
  "capt",
  "lt",
  "no",
  "vs",
  "etc",
  "co",
  "inc",
  "ltd",
  "u.s",
  "e.g",
  "i.e",
  "jan",
  "feb",
  "mar",
  "apr",
  "jun",
  "jul",
  "aug",
  "sep",
  "sept",
  "oct",
  "nov",
  "dec",
  "mt",
  "ft",
]);

/** Candidate sentence ends: [.!?] (plus closing quotes/brackets) then space then a capital. */
const BOUNDARY = /([.!?]["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9])/g;

/** Split prose into sentences (whitespace collapsed). */
export function splitSentences(text: string): string[] {
  const flat = text.replace(/\s+/g, " ").trim();
  if (!flat) return [];
  const out: string[] = [];
  let start = 0;
  for (const m of flat.matchAll(BOUNDARY)) {
    const end = m.index! + m[1].length;
    const piece = flat.slice(start, end);
    const lastWord = /(\S+)[.!?]["'”’)\]]*$/.exec(piece)?.[1]?.toLowerCase() ?? "";
    // "Mr. Smith", "U.S. Congress", initials "J. Adams": not sentence ends.
    if (m[1][0] === "." && (ABBREVIATIONS.has(lastWord) || /^[a-z]$/i.test(lastWord))) continue;
    out.push(piece);
    start = m.index! + m[0].length;
  }
  out.push(flat.slice(start));
  return out.filter((s) => s.length > 0);
}

const BABI_WORDS = new RegExp(
  `\\b(${ACTORS.join("|")})\\b|\\b(${[...LOCATIONS, ...OBJECTS].join("|")})s?\\b`,
  "i",
);

/** True when a sentence names a bAbI actor, location or object (then it must not be used). */
export function mentionsBabiEntity(sentence: string): boolean {
  return BABI_WORDS.test(sentence);
}
