/**
 * Rotary position embeddings in Hugging Face's half-split layout (rotate_half): a head vector
 * x (hd) is rotated as pairs (x[j], x[j + hd/2]) by angle pos·invFreq[j]. Frequencies follow
 * HF's rope_init functions for default, linear, llama3 and yarn scaling.
 */
import type { ModelConfig } from "./config.ts";

/** invFreq[j], j < hd/2, after the config's scaling. */
export function ropeInvFreq(c: ModelConfig): Float64Array {
  const half = c.headDim / 2, d = c.headDim;
  const base = new Float64Array(half);
  for (let j = 0; j < half; j++) base[j] = 1 / Math.pow(c.ropeTheta, (2 * j) / d);
  const s = c.ropeScaling;
  switch (s.type) {
    case "default":
      return base;
    case "linear":
      return base.map((f) => f / s.factor);
    case "llama3": {
      // HF _compute_llama3_parameters: long wavelengths divided by factor, short kept,
      // a smooth blend in between.
      const lowWave = s.originalMaxPositions / s.lowFreqFactor;
      const highWave = s.originalMaxPositions / s.highFreqFactor;
      return base.map((f) => {
        const wave = (2 * Math.PI) / f;
        if (wave < highWave) return f;
        if (wave > lowWave) return f / s.factor;
        const smooth = (s.originalMaxPositions / wave - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        return (1 - smooth) * f / s.factor + smooth * f;
      });
    }
    case "yarn": {
      // HF _compute_yarn_parameters: interpolate low frequencies, extrapolate high ones.
      const corrDim = (rot: number) =>
        (d * Math.log(s.originalMaxPositions / (rot * 2 * Math.PI))) /
        (2 * Math.log(c.ropeTheta));
      let low = corrDim(s.betaFast), high = corrDim(s.betaSlow);
      if (s.truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, d - 1);
      if (low === high) high += 0.001;
      return base.map((f, j) => {
        const ramp = Math.min(1, Math.max(0, (j - low) / (high - low)));
        const extrapolation = 1 - ramp;
        return (f / s.factor) * (1 - extrapolation) + f * extrapolation;
      });
    }
  }
}

/** Factor on cos and sin (yarn's attention scaling; 1 otherwise). */
export function ropeAttentionScale(c: ModelConfig): number {
  return c.ropeScaling.type === "yarn" ? c.ropeScaling.attentionFactor : 1;
}

/** cos/sin tables (P, hd/2) for positions 0..P-1. */
export function ropeTables(
  c: ModelConfig,
  positions: number,
): { cos: Float64Array; sin: Float64Array } {
  const inv = ropeInvFreq(c), half = inv.length, m = ropeAttentionScale(c);
  const cos = new Float64Array(positions * half), sin = new Float64Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let j = 0; j < half; j++) {
      cos[p * half + j] = Math.cos(p * inv[j]) * m;
      sin[p * half + j] = Math.sin(p * inv[j]) * m;
    }
  }
  return { cos, sin };
}

/** Rotate one head vector in place: x[off .. off+hd) at table row `pos`. */
export function applyRope(
  x: Float64Array,
  off: number,
  hd: number,
  cos: Float64Array,
  sin: Float64Array,
  pos: number,
): void {
  const half = hd / 2;
  for (let j = 0; j < half; j++) {
    const c = cos[pos * half + j], s = sin[pos * half + j];
    const a = x[off + j], b = x[off + j + half];
    x[off + j] = a * c - b * s;
    x[off + j + half] = b * c + a * s;
  }
}
