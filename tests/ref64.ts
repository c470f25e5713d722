/**
 * Float64 references for the differentiable ops (plain loops, row-major), used as the
 * oracle for forward values and — by finite differences — for VJP, JVP and HVP checks.
 */
export type A = Float64Array;

export const f64 = (x: ArrayLike<number>): A => Float64Array.from(x);

/** C (…, M, N) = op(A)·op(B) with batch over A's leading dims; B shared or batched. */
export function matmul64(
  a: A,
  aShape: number[],
  b: A,
  bShape: number[],
  { transA = false, transB = false } = {},
): A {
  const ar = aShape.length, br = bShape.length;
  const M = transA ? aShape[ar - 1] : aShape[ar - 2], K = transA ? aShape[ar - 2] : aShape[ar - 1];
  const N = transB ? bShape[br - 2] : bShape[br - 1];
  const batch = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const bBatched = bShape.slice(0, -2).reduce((x, y) => x * y, 1) > 1;
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const ao = z * M * K, bo = bBatched ? z * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[ao + k * M + i] : a[ao + i * K + k];
          const bv = transB ? b[bo + j * K + k] : b[bo + k * N + j];
          s += av * bv;
        }
        out[z * M * N + i * N + j] = s;
      }
    }
  }
  return out;
}

/** Row-wise softmax over the last dim (length S) with an optional visibility predicate. */
export function softmax64(x: A, S: number, visible?: (row: number, s: number) => boolean): A {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / S; r++) {
    let m = -Infinity;
    for (let s = 0; s < S; s++) if (!visible || visible(r, s)) m = Math.max(m, x[r * S + s]);
    let z = 0;
    for (let s = 0; s < S; s++) if (!visible || visible(r, s)) z += Math.exp(x[r * S + s] - m);
    for (let s = 0; s < S; s++) {
      out[r * S + s] = !visible || visible(r, s) ? Math.exp(x[r * S + s] - m) / z : 0;
    }
  }
  return out;
}

export function layerNorm64(x: A, C: number, w: A, b: A | undefined, eps: number): A {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += x[r * C + c] / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mu) ** 2 / C;
    const rs = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) {
      out[r * C + c] = (x[r * C + c] - mu) * rs * w[c] + (b ? b[c] : 0);
    }
  }
  return out;
}

export function rmsNorm64(x: A, C: number, w: A, eps: number): A {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[r * C + c] ** 2 / C;
    const rs = 1 / Math.sqrt(ms + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = x[r * C + c] * rs * w[c];
  }
  return out;
}

/**
 * Cotangents of rmsNorm64 for output cotangent g, in closed form: x̄ = r·a − x·r³·Σ(a·x)/C
 * with a = g·w, and w̄ = Σ_rows g·x·r (the fused kernels' formulas, derived independently of
 * the composed ops).
 */
export function rmsNormVjp64(x: A, C: number, w: A, g: A, eps: number): { x: A; w: A } {
  const dx = new Float64Array(x.length), dw = new Float64Array(C);
  for (let r = 0; r < x.length / C; r++) {
    let ms = 0, s = 0;
    for (let c = 0; c < C; c++) {
      ms += x[r * C + c] ** 2 / C;
      s += g[r * C + c] * w[c] * x[r * C + c];
    }
    const rs = 1 / Math.sqrt(ms + eps);
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = rs * g[i] * w[c] - (x[i] * rs ** 3 * s) / C;
      dw[c] += g[i] * x[i] * rs;
    }
  }
  return { x: dx, w: dw };
}

/** HF half-split rotary embedding of x (…, T, D) with tables (T, D/2). */
export function rope64(x: A, T: number, D: number, cos: ArrayLike<number>, sin: ArrayLike<number>) {
  const out = new Float64Array(x.length), h = D / 2;
  for (let i = 0; i < x.length; i++) {
    const j = i % D, t = Math.floor(i / D) % T, f = t * h + (j % h);
    out[i] = j < h ? x[i] * cos[f] - x[i + h] * sin[f] : x[i] * cos[f] + x[i - h] * sin[f];
  }
  return out;
}

/** Attention q (B,H,T,D), k/v (B,Hkv,S,D); causal / segment masks as the kernel. */
export function attention64(
  q: A,
  k: A,
  v: A,
  [B, H, T, D]: number[],
  Hkv: number,
  S: number,
  causal: boolean,
  seg?: ArrayLike<number>,
): A {
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
      const p = softmax64(scores, S, (t, s) => {
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

/** Per-row NLL of targets (−1 ignored → 0). */
export function crossEntropy64(z: A, V: number, targets: ArrayLike<number>): A {
  const out = new Float64Array(z.length / V);
  for (let r = 0; r < out.length; r++) {
    if (targets[r] < 0) continue;
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[r * V + v] - m);
    out[r] = m + Math.log(s) - z[r * V + targets[r]];
  }
  return out;
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
export const axpy = (x: A, a: number, v: ArrayLike<number>): A => x.map((xi, i) => xi + a * v[i]);
