/**
 * Plain kernels for the neural-network ops: masked row softmax, embedding gather and its
 * deterministic scatter-add (CSR built on the host, no float atomics), rotary embedding
 * (half-split layout as Hugging Face LLaMA/Qwen2), fused cross-entropy over the vocabulary
 * with its gradient and the gradient's tangent, and seeded dropout. One lane per row for
 * row kernels (lanes are cheap SIMD lanes on lavapipe; rows are ≤ a vocabulary long).
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { texelLoadFn } from "../runtime/texels.ts";
import { kernel } from "../runtime/kernel.ts";
import { crossEntropyPDotWg, crossEntropyRowsWg } from "./cross_entropy_rows.ts";

// ------------------------------------------------------------------ masked softmax

/**
 * Softmax over the last axis of x viewed as (B, H, T, S). Masks (as attention needs): causal
 * (key s > query t + (S − T) is masked) and segments (query and key must share segIds[b, ·],
 * which needs S = T). Masked entries get probability 0; a fully masked row is all zeros.
 */
const SOFTMAX = kernel({
  name: "softmax_rows",
  inputs: { X: "f32", SEG: "i32" },
  outputs: { Y: "f32" },
  uniforms: { rows: "u32", H: "u32", T: "u32", S: "u32", causal: "u32", seg: "u32" },
  decls: /* wgsl */ `
fn visible(b: u32, t: u32, s: u32) -> bool {
  if (u.causal != 0u && s > t + (u.S - u.T)) { return false; }
  if (u.seg != 0u && SEG[b * u.T + t] != SEG[b * u.S + s]) { return false; }
  return true;
}`,
  lanes: "u.rows",
  body: /* wgsl */ `
  let t = id % u.T;
  let b = id / (u.T * u.H);
  let base = id * u.S;
  var m: f32 = -3.4028235e38;
  for (var s = 0u; s < u.S; s++) { if (visible(b, t, s)) { m = max(m, X[base + s]); } }
  var z: f32 = 0.0;
  for (var s = 0u; s < u.S; s++) { if (visible(b, t, s)) { z += exp(X[base + s] - m); } }
  let inv = select(0.0, 1.0 / z, z > 0.0);
  for (var s = 0u; s < u.S; s++) {
    Y[base + s] = select(0.0, exp(X[base + s] - m) * inv, visible(b, t, s));
  }`,
});

export interface SoftmaxMask {
  /** (B, H, T, S) interpretation of x: heads and queries per batch row. Default H = 1. */
  readonly heads?: number;
  readonly causal?: boolean;
  /** (B, T) i32 segment ids: attention only within a segment. */
  readonly segIds?: Tensor;
}

export function softmaxRows(x: Tensor, m: SoftmaxMask = {}): Tensor {
  const rt = x.rt;
  const S = x.shape.at(-1)!;
  const T = x.shape.length >= 2 ? x.shape.at(-2)! : 1;
  const rows = x.size / S;
  const H = m.heads ?? 1;
  if (m.segIds && m.segIds.dtype !== "i32") throw new TypeError("softmax: segIds must be i32");
  const seg = m.segIds ?? rt.zeros([1], "i32");
  const y = rt.empty(x.shape);
  const causal = m.causal ? 1 : 0, segOn = m.segIds ? 1 : 0;
  SOFTMAX.run(rt, [x, seg, y], { rows, H, T, S, causal, seg: segOn }, rows);
  if (!m.segIds) seg.dispose();
  return y;
}

// ------------------------------------------------------------------ gather / scatter-add

/** Row indices with a host copy, and (lazily) their CSR grouping for scatter-add. */
export class RowIndex {
  #csr: { order: Tensor; start: Tensor } | undefined;
  readonly ids: Tensor;
  constructor(rt: Runtime, readonly host: Int32Array, readonly rows: number) {
    for (const i of host) {
      if (i < 0 || i >= rows) throw new RangeError(`index ${i} outside [0, ${rows})`);
    }
    this.ids = rt.keep(rt.tensor(host, [host.length], "i32"));
  }
  /** Positions sorted by row (order) and each row's first position (start, rows + 1). */
  csr(): { order: Tensor; start: Tensor } {
    if (this.#csr) return this.#csr;
    const rt = this.ids.rt;
    const start = new Int32Array(this.rows + 1);
    for (const i of this.host) start[i + 1]++;
    for (let r = 0; r < this.rows; r++) start[r + 1] += start[r];
    const fill = start.slice(0, this.rows);
    const order = new Int32Array(this.host.length);
    this.host.forEach((r, pos) => (order[fill[r]++] = pos));
    this.#csr = {
      order: rt.keep(rt.tensor(order, [order.length], "i32")),
      start: rt.keep(rt.tensor(start, [start.length], "i32")),
    };
    return this.#csr;
  }
  dispose(): void {
    this.ids.dispose();
    this.#csr?.order.dispose();
    this.#csr?.start.dispose();
  }
}

/**
 * Row gather, one element per lane — a float, or a vec4 of a row (C % 4 = 0, C then counted in
 * vec4s: a quarter of the loads, which lavapipe runs as per-lane loops).
 */
const gatherKernel = (t: "f32" | "vec4f") =>
  kernel({
    name: t === "f32" ? "gather_rows" : "gather_rows_vec4",
    inputs: { W: t, I: "i32" },
    outputs: { Y: t },
    uniforms: { n: "u32", C: "u32", rows: "u32" },
    lanes: "u.n * u.C",
    body: /* wgsl */ `
  // Host ids are range-checked; clamp anyway so ids produced on the GPU (generation) can
  // never index outside the table.
  let r = u32(clamp(I[id / u.C], 0, i32(u.rows) - 1));
  Y[id] = W[r * u.C + id % u.C];`,
  });
const GATHER = gatherKernel("f32"), GATHER4 = gatherKernel("vec4f");
/** table (V, C), ids (N) i32 tensor (may live only on the GPU) → (N, C). */
export function gatherRowsById(table: Tensor, ids: Tensor): Tensor {
  const [rows, C] = [table.shape[0], table.shape.at(-1)!], n = ids.size;
  const y = table.rt.empty([n, C]);
  if (C % 4 === 0) GATHER4.run(table.rt, [table, ids, y], { n, C: C / 4, rows }, (n * C) / 4);
  else GATHER.run(table.rt, [table, ids, y], { n, C, rows }, n * C);
  return y;
}
/** table (V, C), idx (N) → (N, C). */
export function gatherRows(table: Tensor, idx: RowIndex): Tensor {
  return gatherRowsById(table, idx.ids);
}

const SCATTER = kernel({
  name: "scatter_add_rows",
  inputs: { G: "f32", ORDER: "i32", START: "i32" },
  outputs: { Y: "f32" },
  uniforms: { rows: "u32", C: "u32" },
  lanes: "u.rows * u.C",
  body: /* wgsl */ `
  let r = id / u.C;
  let c = id % u.C;
  var acc: f32 = 0.0;
  for (var k = START[r]; k < START[r + 1u]; k++) { acc += G[u32(ORDER[k]) * u.C + c]; }
  Y[id] = acc;`,
});
/** src (N, C) summed into rows idx → (rows, C), deterministic (fixed order per row). */
export function scatterAddRows(src: Tensor, idx: RowIndex): Tensor {
  const C = src.shape.at(-1)!;
  const { order, start } = idx.csr();
  const y = src.rt.empty([idx.rows, C]);
  SCATTER.run(src.rt, [src, order, start, y], { rows: idx.rows, C }, idx.rows * C);
  return y;
}

// ------------------------------------------------------------------ rotary embedding

// x (…, T, D), half = D/2: y1 = x1·cos − x2·sin, y2 = x2·cos + x1·sin (sign −1: the inverse).
const ROPE = kernel({
  name: "rope",
  inputs: { X: "f32", COS: "f32", SIN: "f32" },
  outputs: { Y: "f32" },
  uniforms: { n: "u32", T: "u32", D: "u32", sign: "f32" },
  lanes: "u.n",
  body: /* wgsl */ `
  let half = u.D / 2u;
  let j = id % u.D;
  let t = (id / u.D) % u.T;
  let f = t * half + (j % half);
  let s = u.sign * SIN[f];
  if (j < half) { Y[id] = X[id] * COS[f] - X[id + half] * s; }
  else { Y[id] = X[id] * COS[f] + X[id - half] * s; }`,
});
/** Rotate x (…, T, D) with tables cos/sin (T, D/2); inverse = the transpose (for the VJP). */
export function rope(x: Tensor, cos: Tensor, sin: Tensor, inverse = false): Tensor {
  const D = x.shape.at(-1)!, T = x.shape.at(-2)!;
  if (D % 2 || cos.size !== T * (D / 2) || sin.size !== cos.size) {
    throw new RangeError(`rope: x ${x} needs cos/sin tables of ${T}×${D / 2}`);
  }
  const y = x.rt.empty(x.shape);
  ROPE.run(x.rt, [x, cos, sin, y], { n: x.size, T, D, sign: inverse ? -1 : 1 }, x.size);
  return y;
}

/** cos/sin tables for positions p0 … p0+T−1 (HF: inv_freq = θ^(−2i/D)), as host arrays. */
export function ropeTables(T: number, D: number, theta: number, p0 = 0, scale = 1) {
  const half = D / 2, cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = ((p0 + t) / scale) * Math.pow(theta, (-2 * i) / D);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

// ------------------------------------------------------------------ cross-entropy

const CE_U = { N: "u32", V: "u32" } as const;
/** One lane per logit (row i): its target t and probability p. */
const CE_ELEM = /* wgsl */ `
  let i = id / u.V;
  let t = TGT[i];
  let p = exp(Z[id] - LSE[i]);`;

const CE_FWD = kernel({
  name: "ce_rows",
  inputs: { Z: "f32", TGT: "i32" },
  outputs: { NLL: "f32", LSE: "f32" },
  uniforms: CE_U,
  lanes: "u.N",
  body: /* wgsl */ `
  let base = id * u.V;
  var m: f32 = -3.4028235e38;
  for (var v = 0u; v < u.V; v++) { m = max(m, Z[base + v]); }
  var s: f32 = 0.0;
  for (var v = 0u; v < u.V; v++) { s += exp(Z[base + v] - m); }
  let lse = m + log(s);
  LSE[id] = lse;
  let t = TGT[id];
  NLL[id] = select(0.0, lse - Z[base + u32(max(t, 0))], t >= 0);`,
});
/**
 * Cross-entropy over logits read as staged texels (kernels/runtime/texels.ts: lavapipe's
 * storage loads are per-lane loops), for V % 4 = 0: a vec4 of one row per load, and ce_grad
 * writes 4 outputs per lane. On (1024, 6144) logits: ce_rows 115 → 17 ms, ce_grad 266 → 72 ms.
 */
const CE_FWD_TEX = kernel({
  name: "ce_rows_tex",
  inputs: { Z: "texture", TGT: "i32" },
  outputs: { NLL: "f32", LSE: "f32" },
  uniforms: CE_U,
  decls: texelLoadFn("ldZ", "Z"),
  lanes: "u.N",
  body: /* wgsl */ `
  let V4 = u.V / 4u;
  let base = id * V4;
  var m4 = vec4f(-3.4028235e38);
  for (var v = 0u; v < V4; v++) { m4 = max(m4, ldZ(base + v)); }
  let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
  var s4 = vec4f(0.0);
  for (var v = 0u; v < V4; v++) { s4 += exp(ldZ(base + v) - m); }
  let lse = m + log(s4.x + s4.y + s4.z + s4.w);
  LSE[id] = lse;
  let t = TGT[id];
  let tc = u32(max(t, 0));
  NLL[id] = select(0.0, lse - ldZ(base + tc / 4u)[tc % 4u], t >= 0);`,
});

export interface CeOptions {
  /**
   * Per-row passes (forward, the tangent's Σ p·ż): "lane" = one lane per row (CPU adapters),
   * "workgroup" = one workgroup per row (cross_entropy_rows.ts). Default: by the adapter.
   */
  readonly rows?: "lane" | "workgroup";
}
/** Whether the per-row passes run one workgroup per row (not on CPU adapters by default). */
const wgRows = (z: Tensor, o: CeOptions) =>
  (o.rows ?? (z.rt.isCpuAdapter ? "lane" : "workgroup")) === "workgroup";

/** Per-row NLL of targets (−1 = ignored → 0) and log-sum-exp, from logits (N, V). */
export function crossEntropyRows(
  z: Tensor,
  targets: Tensor,
  o: CeOptions = {},
): [Tensor, Tensor] {
  const V = z.shape.at(-1)!, N = z.size / V;
  if (targets.size !== N || targets.dtype !== "i32") {
    throw new RangeError(`cross-entropy: targets ${targets} must be i32 with ${N} entries`);
  }
  const rt = z.rt;
  const nll = rt.empty([N]), lse = rt.empty([N]);
  if (wgRows(z, o)) {
    crossEntropyRowsWg(z, targets, nll, lse, N, V);
  } else if (ceTexels(z, V)) {
    CE_FWD_TEX.run(rt, [rt.texels(z, 0), targets, nll, lse], { N, V }, N);
  } else {
    CE_FWD.run(rt, [z, targets, nll, lse], { N, V }, N);
  }
  return [nll, lse];
}

/** Whether the texel CE kernels take these logits (CPU adapters, V % 4 = 0, fits). */
function ceTexels(z: Tensor, V: number): boolean {
  return z.rt.isCpuAdapter && V % 4 === 0 && z.rt.texelsFit(z.size);
}

const CE_GRAD = kernel({
  name: "ce_grad",
  inputs: { Z: "f32", TGT: "i32", LSE: "f32", G: "f32" },
  outputs: { DZ: "f32" },
  uniforms: CE_U,
  lanes: "u.N * u.V",
  body: /* wgsl */ `${CE_ELEM}
  DZ[id] = select(0.0, G[i] * (p - select(0.0, 1.0, u32(t) == id % u.V)), t >= 0);`,
});
/**
 * The texel kernels' element (needs id, a lane per 4 logits of one row, V % 4 = 0; ldZ):
 * row i, its target t, the 4 softmax probabilities p and their one-hot oh.
 */
const CE_ELEM4 = /* wgsl */ `
  let i = id * 4u / u.V;
  let t = TGT[i];
  let p = exp(ldZ(id) - LSE[i]);
  let c0 = id * 4u % u.V;
  let oh = select(vec4f(0.0), vec4f(1.0), vec4u(c0, c0 + 1u, c0 + 2u, c0 + 3u) == vec4u(u32(t)));`;

/**
 * dz from staged texels, `w` texels of one row per lane (V % 4w = 0): with w = 4 the row's
 * target, log-sum-exp and cotangent (three per-lane storage loads, each a loop over the lanes on
 * lavapipe) are loaded once per 16 logits instead of once per 4. The same arithmetic per logit.
 */
const ceGradTex = (w: 1 | 4) =>
  kernel({
    name: w === 1 ? "ce_grad_tex" : "ce_grad_tex16",
    inputs: { Z: "texture", TGT: "i32", LSE: "f32", G: "f32" },
    outputs: { DZ: "vec4f" },
    uniforms: CE_U,
    decls: texelLoadFn("ldZ", "Z"),
    lanes: `u.N * u.V / ${4 * w}u`,
    body: /* wgsl */ `
  let i = id * ${4 * w}u / u.V;
  let t = TGT[i];
  let lse = LSE[i];
  let gi = G[i];
  for (var q = 0u; q < ${w}u; q++) {
    let k = id * ${w}u + q;
    let p = exp(ldZ(k) - lse);
    let c0 = k * 4u % u.V;
    let oh = select(vec4f(0.0), vec4f(1.0), vec4u(c0, c0 + 1u, c0 + 2u, c0 + 3u) == vec4u(u32(t)));
    DZ[k] = select(vec4f(0.0), gi * (p - oh), t >= 0);
  }`,
  });
const CE_GRAD_TEX = ceGradTex(1), CE_GRAD_TEX16 = ceGradTex(4);

/** dz = g_i · (softmax(z)_i − onehot(t_i)) (0 on ignored rows). */
export function crossEntropyGrad(z: Tensor, targets: Tensor, lse: Tensor, g: Tensor): Tensor {
  const V = z.shape.at(-1)!, N = z.size / V, rt = z.rt;
  const dz = rt.empty(z.shape);
  if (ceTexels(z, V) && V % 16 === 0) {
    CE_GRAD_TEX16.run(rt, [rt.texels(z, 0), targets, lse, g, dz], { N, V }, (N * V) / 16);
  } else if (ceTexels(z, V)) {
    const zt = rt.texels(z, 0);
    CE_GRAD_TEX.run(rt, [zt, targets, lse, g, dz], { N, V }, (N * V) / 4);
  } else {
    CE_GRAD.run(rt, [z, targets, lse, g, dz], { N, V }, N * V);
  }
  return dz;
}

// OUT[i] = Σ_v p_v·ż_v (the tangent of the log-sum-exp); with u.nllMode = 1 minus ż at the
// target (the tangent of the NLL; 0 on ignored rows).
const CE_DOT = kernel({
  name: "ce_pdot",
  inputs: { Z: "f32", TGT: "i32", LSE: "f32", DZ: "f32" },
  outputs: { OUT: "f32" },
  uniforms: { N: "u32", V: "u32", nllMode: "u32" },
  lanes: "u.N",
  body: /* wgsl */ `
  let base = id * u.V;
  var s: f32 = 0.0;
  for (var v = 0u; v < u.V; v++) { s += exp(Z[base + v] - LSE[id]) * DZ[base + v]; }
  let t = TGT[id];
  OUT[id] = select(s, select(0.0, s - DZ[base + u32(max(t, 0))], t >= 0), u.nllMode != 0u);`,
});
// As CE_DOT over staged texels (V % 4 = 0): a vec4 of Z and of DZ per load, four partial
// sums (the order differs from CE_DOT's by rounding only). On lavapipe's (288, 6144) logits of
// the 256-token meta-step: 15 ms per call with storage loads.
const CE_DOT_TEX = kernel({
  name: "ce_pdot_tex",
  inputs: { Z: "texture", TGT: "i32", LSE: "f32", DZ: "texture" },
  outputs: { OUT: "f32" },
  uniforms: { N: "u32", V: "u32", nllMode: "u32" },
  decls: `${texelLoadFn("ldZ", "Z")}\n${texelLoadFn("ldD", "DZ")}`,
  lanes: "u.N",
  body: /* wgsl */ `
  let V4 = u.V / 4u;
  let base = id * V4;
  let lse = LSE[id];
  var s4 = vec4f(0.0);
  for (var v = 0u; v < V4; v++) { s4 += exp(ldZ(base + v) - lse) * ldD(base + v); }
  let s = (s4.x + s4.y) + (s4.z + s4.w);
  let t = TGT[id];
  let tc = u32(max(t, 0));
  OUT[id] = select(s, select(0.0, s - ldD(base + tc / 4u)[tc % 4u], t >= 0), u.nllMode != 0u);`,
});

/**
 * Σ_v softmax(z)_v · ż_v per row: the tangent of log-sum-exp; with `nll`, minus ż at the
 * target: the tangent of the per-row NLL (0 on ignored rows).
 */
export function crossEntropyPDot(
  z: Tensor,
  targets: Tensor,
  lse: Tensor,
  dz: Tensor,
  nll = false,
  o: CeOptions = {},
): Tensor {
  const V = z.shape.at(-1)!, N = z.size / V;
  const out = z.rt.empty([N]);
  if (wgRows(z, o)) {
    crossEntropyPDotWg(z, targets, lse, dz, out, N, V, nll);
    return out;
  }
  const u = { N, V, nllMode: nll ? 1 : 0 };
  if (ceTexels(z, V)) {
    const rt = z.rt;
    CE_DOT_TEX.run(rt, [rt.texels(z, 0), targets, lse, rt.texels(dz, 1), out], u, N);
    return out;
  }
  CE_DOT.run(z.rt, [z, targets, lse, dz, out], u, N);
  return out;
}

// d/dε of g·(p − onehot): ġ·(p − onehot) + g·p·(ż − Σ p ż)
const CE_GRAD_TAN = kernel({
  name: "ce_grad_tangent",
  inputs: { Z: "f32", TGT: "i32", LSE: "f32", G: "f32", GD: "f32", ZD: "f32", PD: "f32" },
  outputs: { OUT: "f32" },
  uniforms: CE_U,
  lanes: "u.N * u.V",
  body: /* wgsl */ `${CE_ELEM}
  let oh = select(0.0, 1.0, u32(t) == id % u.V);
  OUT[id] = select(0.0, GD[i] * (p - oh) + G[i] * p * (ZD[id] - PD[i]), t >= 0);`,
});
// As CE_GRAD_TAN over staged texels (V % 4 = 0), 4 outputs of one row per lane: seven
// storage loads per logit made the scalar kernel the slowest per element on lavapipe
// (50 ms on (288, 6144) logits).
const CE_GRAD_TAN_TEX = kernel({
  name: "ce_grad_tangent_tex",
  inputs: {
    Z: "texture",
    TGT: "i32",
    LSE: "f32",
    G: "f32",
    GD: "f32",
    ZD: "texture",
    PD: "f32",
  },
  outputs: { OUT: "vec4f" },
  uniforms: CE_U,
  decls: `${texelLoadFn("ldZ", "Z")}\n${texelLoadFn("ldD", "ZD")}`,
  lanes: "u.N * u.V / 4u",
  body: /* wgsl */ `${CE_ELEM4}
  OUT[id] = select(vec4f(0.0), GD[i] * (p - oh) + G[i] * p * (ldD(id) - PD[i]), t >= 0);`,
});

/** The tangent of crossEntropyGrad, fused (the second-order CE kernel). */
export function crossEntropyGradTangent(
  z: Tensor,
  targets: Tensor,
  lse: Tensor,
  g: Tensor,
  gDot: Tensor,
  zDot: Tensor,
  o: CeOptions = {},
): Tensor {
  const V = z.shape.at(-1)!, N = z.size / V;
  const rt = z.rt;
  const out = rt.empty(z.shape);
  if (!wgRows(z, o) && ceTexels(z, V)) {
    // Both passes read the same staged views (staged once: each copy is N·V floats).
    const zt = rt.texels(z, 0), dt = rt.texels(zDot, 1);
    const pd = rt.empty([N]);
    CE_DOT_TEX.run(rt, [zt, targets, lse, dt, pd], { N, V, nllMode: 0 }, N);
    CE_GRAD_TAN_TEX.run(rt, [zt, targets, lse, g, gDot, dt, pd, out], { N, V }, (N * V) / 4);
    pd.dispose();
    return out;
  }
  const pd = crossEntropyPDot(z, targets, lse, zDot, false, o);
  CE_GRAD_TAN.run(rt, [z, targets, lse, g, gDot, zDot, pd, out], { N, V }, N * V);
  pd.dispose();
  return out;
}

// ------------------------------------------------------------------ dropout

const DROPOUT = kernel({
  name: "dropout",
  inputs: { X: "f32" },
  outputs: { Y: "f32" },
  uniforms: { n: "u32", seed: "u32", threshold: "u32", scale: "f32" },
  decls: /* wgsl */ `
fn hash(x: u32) -> u32 { // lowbias32
  var h = x;
  h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u;
  return h;
}`,
  lanes: "u.n",
  body: /* wgsl */ `
  let keep = hash(id ^ hash(u.seed)) >= u.threshold;
  Y[id] = select(0.0, X[id] * u.scale, keep);`,
});
/** Inverted dropout with a counter-based hash: the mask depends only on (seed, index). */
export function dropout(x: Tensor, p: number, seed: number): Tensor {
  const y = x.rt.empty(x.shape);
  const threshold = Math.min(0xffffffff, Math.round(p * 4294967296));
  DROPOUT.run(x.rt, [x, y], { n: x.size, seed: seed >>> 0, threshold, scale: 1 / (1 - p) }, x.size);
  return y;
}
/** Host twin of the dropout mask (for references). */
export function dropoutMaskRef(n: number, p: number, seed: number): Float64Array {
  const h = (x: number) => {
    x >>>= 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x ^= x >>> 16;
    return x >>> 0;
  };
  const thr = Math.min(0xffffffff, Math.round(p * 4294967296));
  const hs = h(seed);
  return Float64Array.from({ length: n }, (_, i) => (h((i ^ hs) >>> 0) >= thr ? 1 / (1 - p) : 0));
}

// ------------------------------------------------------------------ float64 references

/**
 * Reference of softmaxRows: row-wise softmax over the last dim (length S) of x; visible(row,
 * s) = false masks an entry (probability 0), as the causal / segment masks do.
 */
export function softmaxRef(
  x: ArrayLike<number>,
  S: number,
  visible?: (row: number, s: number) => boolean,
): Float64Array {
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

/** Reference of rope: HF half-split rotary embedding of x (…, T, D) with tables (T, D/2). */
export function ropeRef(
  x: ArrayLike<number>,
  T: number,
  D: number,
  cos: ArrayLike<number>,
  sin: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(x.length), h = D / 2;
  for (let i = 0; i < x.length; i++) {
    const j = i % D, t = Math.floor(i / D) % T, f = t * h + (j % h);
    out[i] = j < h ? x[i] * cos[f] - x[i + h] * sin[f] : x[i] * cos[f] + x[i - h] * sin[f];
  }
  return out;
}

/** Reference of crossEntropyRows' NLL: per-row −log softmax(z)[target] (target −1 → 0). */
export function crossEntropyRef(
  z: ArrayLike<number>,
  V: number,
  targets: ArrayLike<number>,
): Float64Array {
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
