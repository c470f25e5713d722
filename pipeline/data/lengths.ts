/** Context windows in tokens: "1k" … "128k" are multiples of 1024 (PERK's windows). */
import { DataInputError } from "./errors.ts";

export const WINDOWS = ["1k", "2k", "4k", "8k", "16k", "32k", "64k", "128k"] as const;
export type Window = typeof WINDOWS[number];

/** Tokens of a window label ("8k" → 8192); plain integers are taken as token counts. */
export function windowTokens(label: string): number {
  const m = /^(\d+)k$/i.exec(label.trim());
  if (m) return Number(m[1]) * 1024;
  if (/^\d+$/.test(label.trim()) && Number(label) > 0) return Number(label);
  throw new DataInputError(
    `length "${label}": use one of ${WINDOWS.join(", ")} (×1024 tokens) or a token count`,
  );
}

/** Where the relevant facts go: first/middle/last third of the context, or anywhere. */
export const POSITIONS = ["pre", "mid", "post", "rnd"] as const;
export type Position = typeof POSITIONS[number];

/** The [lo, hi] range (inclusive) of slots 0..count that a position allows. */
export function positionRange(position: Position, count: number): [number, number] {
  const third = Math.floor(count / 3);
  switch (position) {
    case "pre":
      return [0, third];
    case "mid":
      return [third, Math.max(third, count - third)];
    case "post":
      return [count - third, count];
    case "rnd":
      return [0, count];
  }
}
