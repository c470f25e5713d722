/**
 * Time estimates for `--dry-run` and the start of a run: what a stage costs on the reference
 * host, this project's 2-core CPU (lavapipe WebGPU, the tiny model), built from per-unit
 * figures measured there. Stages give their own cost (`Stage.estimate`) from these units; a
 * stage without a model for its parameters (another model) gives none and is listed as such.
 *
 * Measured 2026-12-07 on the reference host (run folder of `./perk experiment
 * babilong-qa2-8k`, stage times in its log.txt; `deno task perf` metatrain_256_cpu_T1_ms):
 *   perk-meta-train, 150 steps at 512 tokens, N = 4, T = 1, 2 validations of 4: 574 s
 *   perk-answer, 40 problems at 8K, N = 4: 954 s; N = 0 (no-encode): 6.3 s
 *   ft-icr-train, 150 problems at 512, 1 epoch: 113 s; ft-icr-eval, 40 at 8K: 281 s
 *   one meta-step at 256 tokens (T = 1): 1.6–1.9 s
 * The host is shared and noisy (±30% between runs); another machine scales all of it.
 */
import { windowTokens } from "../data/lengths.ts";
import type { Plan, PlannedNode } from "./graph.ts";

export const REFERENCE_HOST = "the reference host (2-core CPU, lavapipe, tiny model)";

/** Per-unit costs on the reference host. */
export const UNIT = {
  /** One inner step (forward, backward, LoRA AdamW) per context token: 954 s / (40·8192·4). */
  innerStepMsPerToken: 0.7,
  /**
   * One retained inner step of a meta-step per training token: the differentiated step, its
   * second-order sweep and the outer loss (574 s at 512 tokens less the inner steps and the
   * validations: 3.56 s a step, 1.43 s of which are the four inner steps).
   */
  retainedStepMsPerToken: 4.2,
  /**
   * The calibration's own unit on the reference host, idle (pipeline/perk/calibrate.ts: one
   * inner step of 4 × 256 tokens, best of two): 0.41 and 0.49 ms measured 2026-12-07 with
   * `--recalibrate` on a quiet host (beside other jobs: 0.48–0.70 ⇒ the estimate reads long).
   * A machine measuring this is 1.0×.
   */
  calibrationMsPerToken: 0.45,
  /** Greedy answer from the question alone (a few tokens, then EOS): 6.3 s / 40. */
  answerS: 0.16,
  /** FT-ICR fine-tuning per training token and epoch (validation included): 113 s / 76,800. */
  ftMsPerToken: 1.45,
  /** Answering with the context in the prompt, per context token: 281 s / (40·8192). */
  inContextMsPerToken: 0.86,
  /** Building problems (haystack, facts, tokenising) per token. */
  problemsMsPerToken: 0.002,
  /** Pretraining throughput of the cpu base profile (the tiny profile costs 2.9× more). */
  pretrainTokensPerS: 600,
} as const;

/** How many problems an upstream `build-problems` node makes, and tokens per problem. */
export function problemsOf(params: unknown): { n: number; tokens: number } | undefined {
  if (!params || typeof params !== "object") return undefined;
  const p = params as { n?: unknown; length?: unknown };
  if (typeof p.n !== "number" || typeof p.length !== "string") return undefined;
  try {
    return { n: p.n, tokens: windowTokens(p.length) };
  } catch {
    return undefined;
  }
}

/** Seconds to encode one context of `tokens` tokens with `steps` inner steps. */
export const encodeS = (tokens: number, steps: number): number =>
  tokens * steps * UNIT.innerStepMsPerToken / 1000;

/** "45 s", "12 min", "3.4 h". */
export function formatDuration(s: number): string {
  if (s < 0.5) return "<1 s";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A planned node's estimate in seconds on the reference host; undefined: no cost model. */
export function nodeCost(p: Plan, planned: PlannedNode): number | undefined {
  const estimate = planned.node.stage.estimate;
  if (!estimate) return undefined;
  const byKey = new Map(p.order.map((n) => [n.key, n]));
  const upstream = Object.fromEntries(
    Object.entries(planned.upstream).map(([name, key]) => [name, byKey.get(key)?.params]),
  );
  const s = estimate(planned.params, upstream);
  return s === undefined || !Number.isFinite(s) ? undefined : Math.max(0, s);
}

/** What the nodes to compute cost together, and which stages have no cost model. */
export function planCost(
  p: Plan,
  compute: ReadonlySet<string>,
): { seconds: number; unknown: string[] } {
  let seconds = 0;
  const unknown = new Set<string>();
  for (const n of p.order) {
    if (!compute.has(n.key)) continue;
    const s = nodeCost(p, n);
    if (s === undefined) unknown.add(n.node.stage.name);
    else seconds += s;
  }
  return { seconds, unknown: [...unknown] };
}

/** This machine's speed against the reference host (from a calibration), for estimates. */
export interface Speed {
  /** Reference time over this machine's time (2: this machine is twice as fast). */
  readonly factor: number;
  /** What it was measured on, for the line. */
  readonly adapter: string;
}

/**
 * One line: the estimate of a plan's computing nodes (cached nodes cost nothing), scaled to
 * this machine when a calibration is given.
 */
export function costLine(p: Plan, compute: ReadonlySet<string>, speed?: Speed): string {
  const { seconds, unknown } = planCost(p, compute);
  if (compute.size === 0) return "estimate: nothing to compute (every stage is cached)";
  const t = (s: number) => s < 0.5 ? "<1 s" : `~${formatDuration(s)}`;
  const none = unknown.length
    ? `; no estimate for ${unknown.join(", ")} (no cost model for this model)`
    : "";
  const where = speed
    ? `here (${speed.adapter} measured at ${
      speed.factor.toFixed(2)
    }× the speed of ${REFERENCE_HOST}, ` +
      `where it takes ${t(seconds)})`
    : `on ${REFERENCE_HOST}`;
  return `estimate: ${t(speed ? seconds / speed.factor : seconds)} for ${compute.size} stage ` +
    `runs ${where}${none} (cached stages cost nothing; early stopping can end meta-training sooner)`;
}
