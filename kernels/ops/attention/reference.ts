/**
 * Float64 references of the attention kernels: plain loops over every visible (query row,
 * key) pair, nothing fused. Tests compare both kernel families with them, and them with
 * central differences. Shapes as the kernels: q / O (B, H, T, D), k / v (B, Hkv, S, D),
 * L and the other row vectors (B, H, T), all flattened row-major.
 */
import type { Dims } from "./launch.ts";
import { softmaxRef } from "../nn_kernels.ts";

/** Float64 inputs of the references: q (B,H,T,D), k/v (B,Hkv,S,D), seg (B,T) or undefined. */
export interface Ref64 {
  readonly dims: Dims;
  readonly causal: boolean;
  readonly seg?: ArrayLike<number>;
  readonly scale: number;
}
type F64 = Float64Array;

/** Visit every visible (row r = (b,h,t), key j) pair; qo / ko are element offsets. */
function pairs64(
  c: Ref64,
  f: (r: number, qo: number, ko: number, t: number, j: number) => void,
): void {
  const { B, H, Hkv, T, S, D } = c.dims, g = H / Hkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const r = (b * H + h) * T + t;
        for (let j = 0; j < S; j++) {
          if (c.causal && j > t + (S - T)) continue;
          if (c.seg && c.seg[b * T + t] !== c.seg[b * S + j]) continue;
          f(r, r * D, ((b * Hkv + Math.floor(h / g)) * S + j) * D, t, j);
        }
      }
    }
  }
}
const dot64 = (a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, D: number) => {
  let s = 0;
  for (let d = 0; d < D; d++) s += a[ao + d] * b[bo + d];
  return s;
};

/** Δ_r = gO_r·O_r − gL_r per query row (the backward's row statistic). */
const delta64 = (D: number, x: { L: F64; O: F64; gO: F64; gL: F64 }) =>
  x.L.map((_, r) => dot64(x.gO, r * D, x.O, r * D, D) - x.gL[r]);

/** Reference of attentionForward: [O, L]. */
export function attentionForward64(c: Ref64, q: F64, k: F64, v: F64): [F64, F64] {
  const { B, H, T, D } = c.dims, rows = B * H * T;
  const L = new Float64Array(rows).fill(-Infinity);
  pairs64(c, (r, qo, ko) => {
    const s = c.scale * dot64(q, qo, k, ko, D);
    const m = Math.max(L[r], s);
    L[r] = m + Math.log(Math.exp(L[r] - m) + Math.exp(s - m));
  });
  const O = new Float64Array(rows * D);
  pairs64(c, (r, qo, ko) => {
    const p = Math.exp(c.scale * dot64(q, qo, k, ko, D) - L[r]);
    for (let d = 0; d < D; d++) O[qo + d] += p * v[ko + d];
  });
  return [O, L.map((x) => (x === -Infinity ? 0 : x))];
}

/** Reference of attentionForwardTangent (absent tangents: pass zeros). */
export function attentionForwardTangent64(
  c: Ref64,
  q: F64,
  k: F64,
  v: F64,
  dq: F64,
  dk: F64,
  dv: F64,
): [F64, F64] {
  const D = c.dims.D;
  const [O, L] = attentionForward64(c, q, k, v);
  const Od = new Float64Array(O.length), Ld = new Float64Array(L.length);
  pairs64(c, (r, qo, ko) => {
    const p = Math.exp(c.scale * dot64(q, qo, k, ko, D) - L[r]);
    const sd = c.scale * (dot64(dq, qo, k, ko, D) + dot64(q, qo, dk, ko, D));
    Ld[r] += p * sd;
    for (let d = 0; d < D; d++) Od[qo + d] += p * sd * v[ko + d] + p * dv[ko + d];
  });
  for (let r = 0; r < L.length; r++) {
    for (let d = 0; d < D; d++) Od[r * D + d] -= Ld[r] * O[r * D + d];
  }
  return [Od, Ld];
}

/** Reference of attentionBackward (gL may be zeros); O and L are inputs, as in the kernel. */
export function attentionBackward64(
  c: Ref64,
  x: { q: F64; k: F64; v: F64; O: F64; L: F64; gO: F64; gL: F64 },
): [F64, F64, F64] {
  const D = c.dims.D, { q, k, v, L, gO } = x;
  const delta = delta64(D, x);
  const gq = new Float64Array(q.length), gk = new Float64Array(k.length);
  const gv = new Float64Array(v.length);
  pairs64(c, (r, qo, ko) => {
    const p = Math.exp(c.scale * dot64(q, qo, k, ko, D) - L[r]);
    const ds = p * (dot64(gO, qo, v, ko, D) - delta[r]);
    for (let d = 0; d < D; d++) {
      gq[qo + d] += c.scale * ds * k[ko + d];
      gk[ko + d] += c.scale * ds * q[qo + d];
      gv[ko + d] += p * gO[qo + d];
    }
  });
  return [gq, gk, gv];
}

/**
 * Reference of attentionBackwardTangent (absent tangents: zeros). O and L are inputs of the
 * backward, so their tangents dO / dL are independent inputs here too.
 */
export function attentionBackwardTangent64(
  c: Ref64,
  x: { q: F64; k: F64; v: F64; O: F64; L: F64; gO: F64; gL: F64 },
  t: { dq: F64; dk: F64; dv: F64; dO: F64; dL: F64; dgO: F64; dgL: F64 },
): [F64, F64, F64] {
  const D = c.dims.D, { q, k, v, O, L, gO } = x;
  const delta = delta64(D, x);
  const deltaD = L.map((_, r) =>
    dot64(t.dgO, r * D, O, r * D, D) + dot64(gO, r * D, t.dO, r * D, D) - t.dgL[r]
  );
  const oq = new Float64Array(q.length), ok = new Float64Array(k.length);
  const ov = new Float64Array(v.length);
  pairs64(c, (r, qo, ko) => {
    const p = Math.exp(c.scale * dot64(q, qo, k, ko, D) - L[r]);
    const sd = c.scale * (dot64(t.dq, qo, k, ko, D) + dot64(q, qo, t.dk, ko, D));
    const pd = p * (sd - t.dL[r]);
    const dp = dot64(gO, qo, v, ko, D);
    const dpd = dot64(t.dgO, qo, v, ko, D) + dot64(gO, qo, t.dv, ko, D);
    const ds = p * (dp - delta[r]);
    const dsd = pd * (dp - delta[r]) + p * (dpd - deltaD[r]);
    for (let d = 0; d < D; d++) {
      oq[qo + d] += c.scale * (dsd * k[ko + d] + ds * t.dk[ko + d]);
      ok[ko + d] += c.scale * (dsd * q[qo + d] + ds * t.dq[qo + d]);
      ov[ko + d] += pd * gO[qo + d] + p * t.dgO[qo + d];
    }
  });
  return [oq, ok, ov];
}

/**
 * Attention as the composed ops compute it — scores q·kᵀ/√D, masked row softmax (softmaxRef),
 * then P·v — for the tests of composed models; attentionForward64 above is the fused kernel's
 * reference (online log-sum-exp, any scale). q (B,H,T,D), k/v (B,Hkv,S,D); causal / segment
 * masks as the kernel.
 */
export function attentionComposed64(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  [B, H, T, D]: readonly number[],
  Hkv: number,
  S: number,
  causal: boolean,
  seg?: ArrayLike<number>,
): F64 {
  const out = new Float64Array(B * H * T * D), g = H / Hkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / g);
      const scores = new Float64Array(T * S);
      for (let t = 0; t < T; t++) {
        for (let s = 0; s < S; s++) {
          let d = 0;
          for (let i = 0; i < D; i++) {
            d += q[((b * H + h) * T + t) * D + i] * k[((b * Hkv + kh) * S + s) * D + i];
          }
          scores[t * S + s] = d / Math.sqrt(D);
        }
      }
      const p = softmaxRef(scores, S, (t, s) => {
        if (causal && s > t + (S - T)) return false;
        if (seg && seg[b * T + t] !== seg[b * S + s]) return false;
        return true;
      });
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < D; i++) {
          let acc = 0;
          for (let s = 0; s < S; s++) acc += p[t * S + s] * v[((b * Hkv + kh) * S + s) * D + i];
          out[((b * H + h) * T + t) * D + i] = acc;
        }
      }
    }
  }
  return out;
}
