/**
 * Control `context-mode`: answers every bAbI question with the location its context names
 * most often, without reading the question — no model, no training. Beating the best constant
 * answer and `perk-no-encode` shows that a method reads the context; beating this shows that it
 * also answers the question asked. (Measured 2026-12-07 on the learning test's QA1 problems at
 * 128 tokens: 86/200, more than PERK from the 2026-12-06 base, 81/200, which gave this answer on
 * 143 of them.) Ties go to the location named last, the most recent one.
 */
import { Effect, Schema } from "effect";
import { LOCATIONS } from "../data/babi_world.ts";
import type { Problem } from "../data/problems.ts";
import { ConfigError } from "../experiment/errors.ts";
import { node } from "../experiment/graph.ts";
import type { Method, Prediction } from "../experiment/methods.ts";
import { defineStage } from "../experiment/stage.ts";

const WORD = new RegExp(`\\b(${LOCATIONS.join("|")})\\b`, "g");

/** The location named most often in `text` (ties: the one named last), or "" if none. */
export function modeLocation(text: string): string {
  const count = new Map<string, number>();
  const last = new Map<string, number>();
  for (const m of text.matchAll(WORD)) {
    count.set(m[1], (count.get(m[1]) ?? 0) + 1);
    last.set(m[1], m.index);
  }
  let best = "";
  for (const [loc, c] of count) {
    const b = count.get(best) ?? 0;
    if (c > b || (c === b && last.get(loc)! > last.get(best)!)) best = loc;
  }
  return best;
}

export const contextModeStage = defineStage({
  name: "context-mode",
  version: 1,
  params: Schema.Struct({}),
  estimate: () => 0, // a regular expression over each context: milliseconds
  run: (_p, inputs: { test: Problem[] }) =>
    Effect.gen(function* () {
      const other = inputs.test.find((p) => p.dataset !== "babilong");
      if (other) {
        return yield* Effect.fail(
          new ConfigError({
            message: `method context-mode answers bAbI tasks only; problem ${other.id} is ` +
              `${other.dataset}: remove context-mode from this experiment's methods`,
          }),
        );
      }
      return inputs.test.map((p): Prediction => ({
        id: p.id,
        prediction: modeLocation(p.context.join("\n")),
        ms: 0,
        peakBytes: 0,
      }));
    }),
});

export const method: Method<Record<string, never>> = {
  name: "context-mode",
  description: "control: the location the context names most often, the question unread",
  params: Schema.Struct({}),
  predictions: (cell) => node(contextModeStage, {}, { test: cell.test }),
};
