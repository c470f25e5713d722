/**
 * PERK's chunking (paper App. A.1): the haystack is cut at sentence boundaries into
 * ~256-token segments; each fact goes into a random segment at a random sentence boundary,
 * prefixed "{Actor} Event {k}: " (done by the caller) so order survives shuffling; segments
 * are shown to the model as "Document {i}: {text}".
 */
import { DataInputError } from "./errors.ts";
import type { Haystack } from "./haystack.ts";
import { type Position, positionRange } from "./lengths.ts";
import { seededRng } from "./rng.ts";

/** Input of the `chunk` stage (JSON-serialisable). */
export interface ChunkParams {
  readonly haystack: Haystack;
  /** Facts as they should appear (already event-prefixed for PERK). */
  readonly facts: string[];
  readonly position: Position;
  readonly segmentTokens: number;
  readonly seed: number;
}

/** Output of the `chunk` stage. `segments` carry no "Document i:" prefix (see documents()). */
export interface Chunked {
  readonly segments: string[];
  /** Segment index of each fact, in fact order. */
  readonly factSegments: number[];
}

/** Split sentences into consecutive groups of about `segmentTokens` tokens. */
export function groupSentences(h: Haystack, segmentTokens: number): string[][] {
  if (!(segmentTokens > 0)) {
    throw new DataInputError(`chunk: segmentTokens must be > 0, got ${segmentTokens}`);
  }
  const groups: string[][] = [];
  let cur: string[] = [], curTokens = 0;
  h.sentences.forEach((s, i) => {
    // Close the segment when this sentence would take it further past the target than
    // stopping short does.
    if (cur.length && curTokens + h.tokens[i] - segmentTokens > segmentTokens - curTokens) {
      groups.push(cur);
      cur = [];
      curTokens = 0;
    }
    cur.push(s);
    curTokens += h.tokens[i];
  });
  if (cur.length || !groups.length) groups.push(cur);
  return groups;
}

export function chunkPlain(p: ChunkParams): Chunked {
  const rng = seededRng(p.seed);
  const groups = groupSentences(p.haystack, p.segmentTokens);
  const [lo, hi] = positionRange(p.position, groups.length - 1);
  const factSegments = p.facts.map(() => lo + rng.int(hi - lo + 1));
  p.facts.forEach((fact, k) => {
    const g = groups[factSegments[k]];
    g.splice(rng.int(g.length + 1), 0, fact);
  });
  return { segments: groups.map((g) => g.join(" ")), factSegments };
}

/** The segments as the model sees them: "Document {i}: {text}" (0-based, like the code). */
export function documents(segments: readonly string[]): string[] {
  return segments.map((s, i) => `${documentPrefix(i)}${s}`);
}

export function documentPrefix(i: number): string {
  return `Document ${i}: `;
}
