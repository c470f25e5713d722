/**
 * Contexts longer than the model's positions (paper §4.1, GPT-2 FT-ICR): a model with
 * learned positions gets its position table linearly interpolated to the new length
 * (position i of the new table = the old table read at i·(P−1)/(P'−1)); a RoPE model gets
 * linear or YaRN frequency scaling with the factor the configuration gives (`rope_scaling`,
 * "linear:4" / "yarn:4"). Without one of those the answer is a clear error naming the fix —
 * never a silently truncated context.
 */
import type { ModelConfig, RopeScaling } from "../model/config.ts";
import type { Model } from "../model/weights.ts";

/** "none", or "linear:F" / "yarn:F" (F > 1): how far RoPE models may stretch. */
export type RopeChoice =
  | { readonly type: "none" }
  | { readonly type: "linear" | "yarn"; readonly factor: number };

export function parseRopeChoice(s: string, where = "rope_scaling"): RopeChoice {
  if (s === "none") return { type: "none" };
  const m = /^(linear|yarn):(\d+(?:\.\d+)?)$/.exec(s);
  if (!m || !(Number(m[2]) > 1)) {
    throw new Error(
      `${where} "${s}": use "none", "linear:F" or "yarn:F" with a factor F > 1 (e.g. "linear:4")`,
    );
  }
  return { type: m[1] as "linear" | "yarn", factor: Number(m[2]) };
}

/** The learned position table (P, C) stretched to P' rows by linear interpolation. */
export function interpolatePositions(
  table: Float32Array,
  P: number,
  C: number,
  P2: number,
): Float32Array {
  const out = new Float32Array(P2 * C);
  for (let i = 0; i < P2; i++) {
    const x = P2 === 1 ? 0 : (i * (P - 1)) / (P2 - 1);
    const lo = Math.floor(x), hi = Math.min(P - 1, lo + 1), w = x - lo;
    for (let c = 0; c < C; c++) {
      out[i * C + c] = (1 - w) * table[lo * C + c] + w * table[hi * C + c];
    }
  }
  return out;
}

/** YaRN as Hugging Face fills it in from a factor (attention factor 0.1·ln F + 1). */
function yarn(factor: number, original: number): RopeScaling {
  return {
    type: "yarn",
    factor,
    originalMaxPositions: original,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 0.1 * Math.log(factor) + 1,
    truncate: true,
  };
}

export interface Extended {
  readonly model: Model;
  /** What was done, for the run's log (undefined: nothing was needed). */
  readonly note?: string;
}

/**
 * `model` able to run sequences of `needed` tokens. `where` names the caller in errors.
 * A learned table is stretched to `needed` rounded up to a multiple of 64.
 */
export function extendPositions(
  model: Model,
  needed: number,
  rope: RopeChoice,
  where: string,
): Extended {
  const c = model.config, P = c.maxPositions;
  if (needed <= P) return { model };
  if (c.positions === "learned") {
    const P2 = Math.ceil(needed / 64) * 64;
    const pos = model.weights.get("pos")!;
    const weights = new Map(model.weights);
    weights.set("pos", { shape: [P2, c.dim], data: interpolatePositions(pos.data, P, c.dim, P2) });
    const config: ModelConfig = { ...c, maxPositions: P2 };
    return {
      model: { config, weights },
      note: `${where}: learned positions interpolated from ${P} to ${P2}`,
    };
  }
  const need = Math.ceil((needed / P) * 100) / 100;
  if (rope.type === "none") {
    throw new Error(
      `${where}: sequences of ${needed} tokens are longer than the model's ${P} positions; ` +
        `set rope_scaling to "linear:F" or "yarn:F" with F ≥ ${need}, or use shorter contexts`,
    );
  }
  if (c.ropeScaling.type !== "default") {
    throw new Error(
      `${where}: sequences of ${needed} tokens are longer than the model's ${P} positions, and ` +
        `its config.json already scales RoPE (${c.ropeScaling.type}); raise that factor there`,
    );
  }
  if (P * rope.factor < needed) {
    throw new Error(
      `${where}: rope_scaling ${rope.type}:${rope.factor} covers ${Math.floor(P * rope.factor)} ` +
        `positions but sequences reach ${needed}; use a factor ≥ ${need}`,
    );
  }
  const ropeScaling: RopeScaling = rope.type === "linear"
    ? { type: "linear", factor: rope.factor }
    : yarn(rope.factor, P);
  const config: ModelConfig = { ...c, ropeScaling, maxPositions: Math.floor(P * rope.factor) };
  return {
    model: { config, weights: model.weights },
    note: `${where}: RoPE ${rope.type} scaling ×${rope.factor} (${P} → ${config.maxPositions})`,
  };
}
