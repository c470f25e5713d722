/**
 * The learning-rate schedule of every training loop: a linear warm-up to the peak, then a
 * cosine decay to `floorRatio`·peak (or the peak held: "constant"). Two ways to size it:
 * `scheduleByFraction` (PERK's outer loop and FT-ICR: warm-up a fraction of the run, at least
 * one step, decay ending at the last step + 1) and `scheduleBySteps` (pretraining: warm-up a
 * number of steps, decay reaching the floor at the last step). Both are the one formula in
 * `lrAt`, with the arithmetic of the per-loop functions it replaced, so the rates are the
 * same floats.
 */

export type ScheduleKind = "cosine" | "constant";
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ["cosine", "constant"];

export interface Schedule {
  /** Learning rate after the warm-up. */
  readonly peak: number;
  /** Steps 0 … warmupSteps−1 ramp linearly: peak·(step + 1)/warmupSteps. */
  readonly warmupSteps: number;
  /** Steps of the cosine after the warm-up (at least 1 is used). */
  readonly decaySteps: number;
  /** The cosine ends at floorRatio·peak (default 0). */
  readonly floorRatio?: number;
  /** Default "cosine". */
  readonly kind?: ScheduleKind;
}

/** The learning rate at 0-based step `step`. */
export function lrAt(s: Schedule, step: number): number {
  const warm = s.warmupSteps;
  if (step < warm) return (s.peak * (step + 1)) / warm;
  if (s.kind === "constant") return s.peak;
  const p = Math.min(1, (step - warm) / Math.max(1, s.decaySteps));
  const f = s.floorRatio ?? 0;
  // With f = 0 this is 0.5·peak·(1 + cos): scaling by 0.5 is exact, so the order is immaterial.
  return s.peak * (f + (1 - f) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

/**
 * Warm-up over ⌈fraction·totalSteps⌉ steps (at least 1), then decay to 0 reached after the
 * last step (perk-method §3: 3% warm-up, cosine).
 */
export function scheduleByFraction(
  peak: number,
  totalSteps: number,
  warmupFraction: number,
  kind: ScheduleKind = "cosine",
): Schedule {
  const warm = Math.max(1, Math.ceil(warmupFraction * totalSteps));
  return { peak, warmupSteps: warm, decaySteps: totalSteps - warm, kind };
}

/**
 * Warm-up over `warmupSteps` (capped at totalSteps − 1), then a cosine that reaches
 * floorRatio·peak at the last step (0-based totalSteps − 1).
 */
export function scheduleBySteps(
  peak: number,
  totalSteps: number,
  warmupSteps: number,
  floorRatio: number,
): Schedule {
  const warm = Math.max(0, Math.min(warmupSteps, totalSteps - 1));
  return { peak, warmupSteps: warm, decaySteps: totalSteps - 1 - warm, floorRatio };
}
