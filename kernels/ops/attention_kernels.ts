/**
 * Fused ("flash") causal self-attention kernels: forward, forward tangent (JVP), backward
 * and the backward's tangent (for Hessian-vector products). Nothing of size T×S is ever
 * allocated: every kernel streams over keys (row kernels: one lane per query row) or over
 * queries (column kernels: one lane per key row, looping over the query heads of its
 * grouped-query group), recomputing s_ij = scale·q_i·k_j and P_ij = exp(s_ij − L_i) from the
 * per-row log-sum-exp L saved by the forward. No atomics: gQ comes from a row kernel, gK/gV
 * from a column kernel.
 *
 * Shapes: q (B, H, T, D), k/v (B, Hkv, S, D), H % Hkv = 0 (query head h reads kv head
 * h / (H/Hkv)). Masks as the composed softmax (nn_kernels.ts): causal hides key j > i + (S−T);
 * segment ids (B, T) i32 (needs S = T) hide keys of another segment. A fully masked row
 * gives O = 0 and L = 0 (the composed softmax gives an all-zero row too).
 *
 * Pipelines are specialised per (kernel, D, family) only — sizes, masks and which tangents
 * are present travel in a uniform — because pipeline creation costs up to ~1 s on lavapipe.
 * D % 4 = 0 uses vec4 loads; other D a scalar path. Each workgroup covers rows of one
 * (b, head), so its key (or query) loop is uniform. Two families: plain (any adapter) and,
 * on 8-lane subgroup adapters (lavapipe), variants that stream the other side in blocks of
 * 8 rows shared by subgroupBroadcast (end of file; ~6× faster there). Each kernel has a
 * float64 reference (plain loops) beside it; tests compare both families with them.
 */
import type { Binding, Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { type BindingKind, cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";
import { texelLoadFn } from "../runtime/texels.ts";

const WG = 64;

/** Masking and scaling shared by every kernel. */
export interface AttnMask {
  readonly causal: boolean;
  /** (B, T) i32 segment ids; needs S = T. */
  readonly segIds?: Tensor;
  /** Score scale (usually 1/√D). */
  readonly scale: number;
}

// Flag bits of the uniform (which masks apply, which optional tensors are bound).
const F = {
  causal: 1,
  seg: 2,
  dq: 4,
  dk: 8,
  dv: 16,
  dgo: 32,
  dO: 64,
  dL: 128,
  gL: 256,
  dgL: 512,
} as const;

// ------------------------------------------------------------------ WGSL building blocks

export interface Dims {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly T: number;
  readonly S: number;
  readonly D: number;
}

function dims(q: Tensor, k: Tensor, v: Tensor, m: AttnMask): Dims {
  if (q.shape.length !== 4 || k.shape.length !== 4) {
    throw new RangeError(`attention: q ${q} and k ${k} must be 4-D (B, H, T, D) / (B, Hkv, S, D)`);
  }
  const [B, H, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  if (Bk !== B || Dk !== D || v.shape.join() !== k.shape.join()) {
    throw new RangeError(`attention: q ${q}, k ${k}, v ${v} do not agree on B / D / (S, D)`);
  }
  if (H % Hkv) throw new RangeError(`attention: ${H} query heads are not a multiple of ${Hkv}`);
  if (m.segIds) {
    if (m.segIds.dtype !== "i32" || m.segIds.size !== B * T) {
      throw new TypeError(`attention: segIds ${m.segIds} must be i32 (B, T) = (${B}, ${T})`);
    }
    if (S !== T) throw new RangeError(`attention: segIds need S = T (got S ${S}, T ${T})`);
  }
  return { B, H, Hkv, T, S, D };
}

/** vec4 path when D % 4 = 0 (VT = vec4f, NV = D/4), else scalar (VT = f32, NV = D). */
function vecOf(D: number) {
  const v4 = D % 4 === 0;
  return { v4, NV: v4 ? D / 4 : D, VT: v4 ? "vec4f" : "f32" };
}

const SEG_OK = `
fn segOk(b: u32, t: u32, j: u32) -> bool {
  return !has(${F.seg}u) || SEG[b * u.T + t] == SEG[b * u.S + j];
}`;
const HEAD = (D: number, seg = true) => {
  const { v4, VT, NV } = vecOf(D);
  return /* wgsl */ `
alias VT = ${VT};
const NV = ${NV}u;
struct U { n: u32, H: u32, Hkv: u32, T: u32, S: u32, grp: u32, flags: u32, scale: f32 }
fn vdot(a: VT, b: VT) -> f32 { return ${v4 ? "dot(a, b)" : "a * b"}; }
fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
// Causal: query t sees keys j <= t + (S - T).
fn keyEnd(t: u32) -> u32 {
  if (!has(${F.causal}u)) { return u.S; }
  return u32(clamp(i32(t) + i32(u.S) - i32(u.T) + 1, 0, i32(u.S)));
}
fn queryStart(j: u32) -> u32 {
  if (!has(${F.causal}u)) { return 0u; }
  return u32(clamp(i32(j) - i32(u.S) + i32(u.T), 0, i32(u.T)));
}
${seg ? SEG_OK : ""}`;
};
const ARGS =
  `@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32`;
const MAIN = `@compute @workgroup_size(${WG})
fn main(${ARGS}) {`;
/**
 * Row-kernel prologue. A workgroup covers WG consecutive query rows of ONE (b, h), so the
 * key index and the key-row address are the same for every lane: lavapipe then loads each
 * key once per workgroup instead of gathering it per lane. The key loop runs to the last
 * row's end (uniform); each lane masks the keys it does not see (vis) instead of branching.
 */
const ROW = `
  let bh = wid.y + wid.z * nwg.y;
  let t0 = wid.x * ${WG}u;
  let live = t0 + lid < u.T && bh < u.n;
  let t = min(t0 + lid, u.T - 1u);
  let id = min(bh, u.n - 1u) * u.T + t;
  let b = id / (u.T * u.H);
  let kb = (b * u.Hkv + (id / u.T) % u.H / u.grp) * u.S;
  let qr = id * NV;
  let myEnd = keyEnd(t);
  let jEnd = keyEnd(min(t0 + ${WG - 1}u, u.T - 1u));`;
/** Column-kernel prologue: as ROW with the roles swapped (WG key rows of one (b, kv head)). */
const COL = `
  let bk = wid.y + wid.z * nwg.y;
  let j0 = wid.x * ${WG}u;
  let live = j0 + lid < u.S && bk < u.n;
  let j = min(j0 + lid, u.S - 1u);
  let id = min(bk, u.n - 1u) * u.S + j;
  let b = id / (u.S * u.Hkv);
  let h0 = (id / u.S) % u.Hkv * u.grp;
  let kr = id * NV;
  let myStart = queryStart(j);
  let i0 = queryStart(j0);`;
/** Per-lane (not per-row) kernels: one lane per item, ids past the end return. */
const MAIN_LANE = `@compute @workgroup_size(${WG})
fn main(${ARGS}) {
  let id = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (id >= u.n) { return; }`;
const bind = (i: number, name: string, type: string, rw = false) =>
  `@group(0) @binding(${i}) var<storage, ${rw ? "read_write" : "read"}> ${name}: array<${type}>;`;
/**
 * Bindings from a list of [name, type, rw?]; the uniform comes last. With `texels`, every
 * read-only vec4 array is a texture instead, read through `ld_NAME(i)` (texels.ts).
 */
function bindings(
  list: [string, string, boolean?][],
  texels = false,
): { wgsl: string; kinds: KernelSpec["bindings"] } {
  const asTex = ([, t, rw]: [string, string, boolean?]) =>
    texels && !rw && (t === "VT" || t === "vec4f");
  const wgsl =
    list.map((e, i) =>
      asTex(e)
        ? `@group(0) @binding(${i}) var ${e[0]}_tex: texture_2d<f32>;\n${
          texelLoadFn(`ld_${e[0]}`, `${e[0]}_tex`)
        }`
        : bind(i, e[0], e[1], e[2])
    ).join("\n") + `\n@group(0) @binding(${list.length}) var<uniform> u: U;`;
  return {
    wgsl,
    kinds: [
      ...list.map((e): BindingKind => (asTex(e) ? "texture" : e[2] ? "read_write" : "read")),
      "uniform",
    ],
  };
}

/** `NAME[expr]` → `ld_NAME(expr)` for each name (brackets matched, so expr may nest). */
function viaTexels(code: string, names: readonly string[]): string {
  for (const name of names) {
    const re = new RegExp(`\\b${name}\\[`, "g");
    let out = "", last = 0;
    for (let m = re.exec(code); m; m = re.exec(code)) {
      let depth = 1, i = m.index + m[0].length;
      for (; i < code.length && depth > 0; i++) {
        if (code[i] === "[") depth++;
        else if (code[i] === "]") depth--;
      }
      out += code.slice(last, m.index) + `ld_${name}(` + code.slice(m.index + m[0].length, i - 1) +
        ")";
      last = i;
      re.lastIndex = i;
    }
    code = out + code.slice(last);
  }
  return code;
}
/** `acc += Σ_d vdot(a(d), b(d))` over the NV vector slots, as a statement. */
const dotInto = (acc: string, a: string, b: string) =>
  `for (var d = 0u; d < NV; d++) { ${acc} += vdot(${a}, ${b}); }`;
const forD = (body: string) => `for (var d = 0u; d < NV; d++) { ${body} }`;

const specCache = new Map<string, KernelSpec>();
function spec(name: string, D: number, make: () => KernelSpec): KernelSpec {
  const key = `${name}/${D}`;
  let s = specCache.get(key);
  if (!s) specCache.set(key, s = make());
  return s;
}

function uniformWords(d: Dims, n: number, flags: number, scale: number): Uint32Array {
  const u = new Uint32Array(8);
  u.set([n, d.H, d.Hkv, d.T, d.S, d.H / d.Hkv, flags]);
  new Float32Array(u.buffer)[7] = scale;
  return u;
}
/** Row kernels: (row block, b·h); column kernels: (key block, b·kv head). u.n = the heads. */
function headGrid(len: number, heads: number): [number, number, number] {
  const y = Math.min(heads, 65535);
  return [cdiv(len, WG), y, cdiv(heads, y)];
}
const laneGrid = (lanes: number) => grid1d(cdiv(lanes, WG));
function maskFlags(m: AttnMask): number {
  return (m.causal ? F.causal : 0) | (m.segIds ? F.seg : 0);
}

/** Bind list helper: absent optional tensors get a 16-byte placeholder (never read). */
class Binder {
  readonly temps: Tensor[] = [];
  flags = 0;
  constructor(readonly rt: Runtime) {}
  opt(t: Tensor | undefined, flag = 0): Tensor {
    if (t) {
      this.flags |= flag;
      return t;
    }
    const p = this.rt.empty([4]);
    this.temps.push(p);
    return p;
  }
  seg(m: AttnMask): Tensor {
    if (m.segIds) return m.segIds;
    const p = this.rt.empty([4], "i32");
    this.temps.push(p);
    return p;
  }
  run(s: KernelSpec, bs: Binding[], grid: [number, number, number]) {
    this.rt.dispatch(s, bs, grid);
    // Placeholders may go back to the pool now: later users are ordered after this dispatch.
    for (const t of this.temps.splice(0)) t.dispose();
  }
}

// ------------------------------------------------------------------ forward

/**
 * One lane per query row: online max / sum over the visible keys.
 * O_i = Σ_j P_ij v_j, L_i = log Σ_j exp(s_ij), s_ij = scale·q_i·k_j.
 */
function fwdSpec(D: number): KernelSpec {
  return spec("attn_fwd", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["SEG", "i32"],
      ["O", "VT", true],
      ["L", "f32", true],
    ]);
    return {
      name: "attn_fwd",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${ROW}
  var q: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}
  var m: f32 = -3.4028235e38;
  var l: f32 = 0.0;
  for (var j = 0u; j < jEnd; j++) {
    let vis = j < myEnd && segOk(b, t, j);
    let kr = (kb + j) * NV;
    var s: f32 = 0.0;
    ${dotInto("s", "q[d]", "K[kr + d]")}
    let mn = select(m, max(m, s), vis);
    let cr = exp(m - mn);
    let p = select(0.0, exp(s - mn), vis);
    l = l * cr + p;
    ${forD("acc[d] = acc[d] * cr + p * Vv[kr + d];")}
    m = mn;
  }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  if (!live) { return; }
  ${forD("O[qr + d] = acc[d] * inv;")}
  L[id] = select(0.0, m + log(l), l > 0.0);
}`,
    };
  });
}

/** O (B, H, T, D) and the per-row log-sum-exp L (B, H, T). */
export function attentionForward(q: Tensor, k: Tensor, v: Tensor, m: AttnMask): [Tensor, Tensor] {
  const d = dims(q, k, v, m), rt = q.rt;
  const o = rt.empty(q.shape), L = rt.empty([d.B, d.H, d.T]);
  const bd = new Binder(rt);
  const seg = bd.seg(m);
  bd.run(
    ...choose(rt, d.D, fwdSgSpec, fwdSpec, [
      q,
      k,
      v,
      seg,
      o,
      L,
      rt.uniform(uniformWords(d, d.B * d.H, maskFlags(m), m.scale)),
    ]),
    headGrid(d.T, d.B * d.H),
  );
  return [o, L];
}

// ------------------------------------------------------------------ float64 references

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

// ------------------------------------------------------------------ forward tangent

/**
 * One lane per query row. With P_ij = exp(s_ij − L_i), Ṡ_ij = scale(q̇_i·k_j + q_i·k̇_j):
 * L̇_i = c_i = Σ_j P_ij Ṡ_ij,  Ȯ_i = Σ_j P_ij Ṡ_ij v_j − c_i O_i + Σ_j P_ij v̇_j.
 */
function fwdTanSpec(D: number): KernelSpec {
  return spec("attn_fwd_tangent", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["O", "VT"],
      ["L", "f32"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["SEG", "i32"],
      ["OD", "VT", true],
      ["LD", "f32", true],
    ]);
    return {
      name: "attn_fwd_tangent",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${ROW}
  let hq = has(${F.dq}u);
  let hk = has(${F.dk}u);
  let hv = has(${F.dv}u);
  var q: array<VT, NV>;
  var dq: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}
  if (hq) { ${forD("dq[d] = dQ[qr + d] * u.scale;")} }
  let Li = L[id];
  var c: f32 = 0.0;
  for (var j = 0u; j < jEnd; j++) {
    let vis = j < myEnd && segOk(b, t, j);
    let kr = (kb + j) * NV;
    var s: f32 = 0.0;
    ${dotInto("s", "q[d]", "K[kr + d]")}
    let p = select(0.0, exp(s - Li), vis);
    var sd: f32 = 0.0;
    if (hq) { ${dotInto("sd", "dq[d]", "K[kr + d]")} }
    if (hk) { ${dotInto("sd", "q[d]", "dK[kr + d]")} }
    let ps = p * sd;
    c += ps;
    ${forD("acc[d] += ps * Vv[kr + d];")}
    if (hv) { ${forD("acc[d] += p * dV[kr + d];")} }
  }
  if (!live) { return; }
  ${forD("OD[qr + d] = acc[d] - c * O[qr + d];")}
  LD[id] = c;
}`,
    };
  });
}

export interface FwdTangents {
  readonly dq?: Tensor;
  readonly dk?: Tensor;
  readonly dv?: Tensor;
}

/** [Ȯ, L̇] for tangents of q, k, v (absent = zero); O, L from attentionForward. */
export function attentionForwardTangent(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  O: Tensor,
  L: Tensor,
  t: FwdTangents,
  m: AttnMask,
): [Tensor, Tensor] {
  const d = dims(q, k, v, m), rt = q.rt;
  const od = rt.empty(q.shape), ld = rt.empty(L.shape);
  const bd = new Binder(rt);
  const bs = [
    q,
    k,
    v,
    O,
    L,
    bd.opt(t.dq, F.dq),
    bd.opt(t.dk, F.dk),
    bd.opt(t.dv, F.dv),
    bd.seg(m),
    od,
    ld,
  ];
  const u = rt.uniform(uniformWords(d, d.B * d.H, maskFlags(m) | bd.flags, m.scale));
  bd.run(...choose(rt, d.D, fwdTanSgSpec, fwdTanSpec, [...bs, u]), headGrid(d.T, d.B * d.H));
  return [od, ld];
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

// ------------------------------------------------------------------ row statistics

/**
 * One lane per query row: ST_i = (L_i, Δ_i, L̇_i, Δ̇_i) with Δ_i = gO_i·O_i − gL_i and
 * Δ̇_i = ġO_i·O_i + gO_i·Ȯ_i − ġL_i (the tangent terms only when bound). The row and column
 * kernels read one vec4 per query row instead of four scalars.
 */
function statsSpec(D: number): KernelSpec {
  return spec("attn_row_stats", D, () => {
    const b = bindings([
      ["O", "VT"],
      ["L", "f32"],
      ["GO", "VT"],
      ["GL", "f32"],
      ["dO", "VT"],
      ["dL", "f32"],
      ["dGO", "VT"],
      ["dGL", "f32"],
      ["ST", "vec4f", true],
    ]);
    return {
      name: "attn_row_stats",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D, false)}
${b.wgsl}
${MAIN_LANE}
  let qr = id * NV;
  var dl: f32 = 0.0;
  ${dotInto("dl", "GO[qr + d]", "O[qr + d]")}
  if (has(${F.gL}u)) { dl -= GL[id]; }
  var dd: f32 = 0.0;
  if (has(${F.dgo}u)) { ${dotInto("dd", "dGO[qr + d]", "O[qr + d]")} }
  if (has(${F.dO}u)) { ${dotInto("dd", "GO[qr + d]", "dO[qr + d]")} }
  if (has(${F.dgL}u)) { dd -= dGL[id]; }
  ST[id] = vec4f(L[id], dl, select(0.0, dL[id], has(${F.dL}u)), dd);
}`,
    };
  });
}

interface BwdTangents extends FwdTangents {
  readonly dO?: Tensor;
  readonly dL?: Tensor;
  readonly dgO?: Tensor;
  readonly dgL?: Tensor;
}

function rowStats(
  d: Dims,
  O: Tensor,
  L: Tensor,
  gO: Tensor,
  gL: Tensor | undefined,
  t: BwdTangents,
): Tensor {
  const rt = O.rt, rows = d.B * d.H * d.T;
  const st = rt.empty([rows, 4]);
  const bd = new Binder(rt);
  const bs = [
    O,
    L,
    gO,
    bd.opt(gL, F.gL),
    bd.opt(t.dO, F.dO),
    bd.opt(t.dL, F.dL),
    bd.opt(t.dgO, F.dgo),
    bd.opt(t.dgL, F.dgL),
    st,
  ];
  bd.run(statsSpec(d.D), [...bs, rt.uniform(uniformWords(d, rows, bd.flags, 0))], laneGrid(rows));
  return st;
}

// ------------------------------------------------------------------ backward

/**
 * Row kernel (one lane per query row): dS_ij = P_ij (gO_i·v_j − Δ_i), gQ_i = scale Σ_j dS_ij k_j.
 */
function bwdRowSpec(D: number): KernelSpec {
  return spec("attn_bwd_row", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["SEG", "i32"],
      ["GQ", "VT", true],
    ]);
    return {
      name: "attn_bwd_row",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${ROW}
  var q: array<VT, NV>;
  var go: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; go[d] = GO[qr + d]; acc[d] = VT(0.0);")}
  let st = ST[id];
  for (var j = 0u; j < jEnd; j++) {
    let vis = j < myEnd && segOk(b, t, j);
    let kr = (kb + j) * NV;
    var s: f32 = 0.0;
    var dp: f32 = 0.0;
    ${forD("s += vdot(q[d], K[kr + d]); dp += vdot(go[d], Vv[kr + d]);")}
    let ds = select(0.0, exp(s - st.x), vis) * (dp - st.y);
    ${forD("acc[d] += ds * K[kr + d];")}
  }
  if (!live) { return; }
  ${forD("GQ[qr + d] = acc[d] * u.scale;")}
}`,
    };
  });
}

/**
 * Column kernel (one lane per key row j of kv head g, looping over the query heads of g and
 * the queries that see j): gK_j = scale Σ_i dS_ij q_i, gV_j = Σ_i P_ij gO_i.
 */
function bwdColSpec(D: number): KernelSpec {
  return spec("attn_bwd_col", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["SEG", "i32"],
      ["GK", "VT", true],
      ["GV", "VT", true],
    ]);
    return {
      name: "attn_bwd_col",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${COL}
  var k: array<VT, NV>;
  var v: array<VT, NV>;
  var ak: array<VT, NV>;
  var av: array<VT, NV>;
  ${forD("k[d] = K[kr + d] * u.scale; v[d] = Vv[kr + d]; ak[d] = VT(0.0); av[d] = VT(0.0);")}
  for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i = i0; i < u.T; i++) {
      let vis = i >= myStart && segOk(b, i, j);
      let r = rb + i;
      let qr = r * NV;
      let st = ST[r];
      var s: f32 = 0.0;
      var dp: f32 = 0.0;
      ${forD("s += vdot(Q[qr + d], k[d]); dp += vdot(GO[qr + d], v[d]);")}
      let p = select(0.0, exp(s - st.x), vis);
      let ds = p * (dp - st.y);
      ${forD("ak[d] += ds * Q[qr + d]; av[d] += p * GO[qr + d];")}
    }
  }
  if (!live) { return; }
  ${forD("GK[kr + d] = ak[d] * u.scale; GV[kr + d] = av[d];")}
}`,
    };
  });
}

/** [gQ, gK, gV] from the output cotangent gO (and optionally gL, the cotangent of L). */
export function attentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  O: Tensor,
  L: Tensor,
  gO: Tensor,
  gL: Tensor | undefined,
  m: AttnMask,
): [Tensor, Tensor, Tensor] {
  const d = dims(q, k, v, m), rt = q.rt;
  const st = rowStats(d, O, L, gO, gL, {});
  const gq = rt.empty(q.shape), gk = rt.empty(k.shape), gv = rt.empty(v.shape);
  const bd = new Binder(rt);
  const seg = bd.seg(m);
  const fl = maskFlags(m);
  rt.dispatch(
    ...choose(rt, d.D, bwdRowSgSpec, bwdRowSpec, [
      q,
      k,
      v,
      gO,
      st,
      seg,
      gq,
      rt.uniform(uniformWords(d, d.B * d.H, fl, m.scale)),
    ]),
    headGrid(d.T, d.B * d.H),
  );
  bd.run(
    ...choose(rt, d.D, bwdColSgSpec, bwdColSpec, [
      q,
      k,
      v,
      gO,
      st,
      seg,
      gk,
      gv,
      rt.uniform(uniformWords(d, d.B * d.Hkv, fl, m.scale)),
    ]),
    headGrid(d.S, d.B * d.Hkv),
  );
  st.dispose();
  return [gq, gk, gv];
}

/** Reference of attentionBackward (gL may be zeros); O and L are inputs, as in the kernel. */
export function attentionBackward64(
  c: Ref64,
  x: { q: F64; k: F64; v: F64; O: F64; L: F64; gO: F64; gL: F64 },
): [F64, F64, F64] {
  const D = c.dims.D, { q, k, v, O, L, gO, gL } = x;
  const delta = L.map((_, r) => dot64(gO, r * D, O, r * D, D) - gL[r]);
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

// ------------------------------------------------------------------ backward tangent

/**
 * The pair terms both tangent kernels share. With Ṡ = scale(q̇·k + q·k̇), Ṗ = P(Ṡ − L̇),
 * dP = gO·v, dṖ = ġO·v + gO·v̇:  dS = P(dP − Δ),  dṠ = Ṗ(dP − Δ) + P(dṖ − Δ̇).
 * q / k here are already scaled by `scale`; qa(d) / ka(d) etc. name the operands.
 */
function pairTangent(
  qa: string,
  ka: string,
  va: string,
  goa: string,
  dqa: string,
  dka: string,
  dva: string,
  dgoa: string,
): string {
  return `
    var s: f32 = 0.0;
    var dp: f32 = 0.0;
    ${forD(`s += vdot(${qa}, ${ka}); dp += vdot(${goa}, ${va});`)}
    var sd: f32 = 0.0;
    if (hq) { ${dotInto("sd", dqa, ka)} }
    if (hk) { ${dotInto("sd", qa, dka)} }
    var dpd: f32 = 0.0;
    if (hg) { ${dotInto("dpd", dgoa, va)} }
    if (hv) { ${dotInto("dpd", goa, dva)} }
    let p = select(0.0, exp(s - st.x), vis);
    let pd = p * (sd - st.z);
    let ds = p * (dp - st.y);
    let dsd = pd * (dp - st.y) + p * (dpd - st.w);`;
}
const FLAGS_LET = `
  let hq = has(${F.dq}u);
  let hk = has(${F.dk}u);
  let hv = has(${F.dv}u);
  let hg = has(${F.dgo}u);`;

/** Row kernel: ġQ_i = scale Σ_j (dṠ_ij k_j + dS_ij k̇_j). */
function bwdTanRowSpec(D: number): KernelSpec {
  return spec("attn_bwd_tangent_row", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["dGO", "VT"],
      ["SEG", "i32"],
      ["OUT", "VT", true],
    ]);
    return {
      name: "attn_bwd_tangent_row",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${ROW}${FLAGS_LET}
  var q: array<VT, NV>;
  var go: array<VT, NV>;
  var dq: array<VT, NV>;
  var dgo: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; go[d] = GO[qr + d]; acc[d] = VT(0.0);")}
  if (hq) { ${forD("dq[d] = dQ[qr + d] * u.scale;")} }
  if (hg) { ${forD("dgo[d] = dGO[qr + d];")} }
  let st = ST[id];
  for (var j = 0u; j < jEnd; j++) {
    let vis = j < myEnd && segOk(b, t, j);
    let kr = (kb + j) * NV;
    ${
        pairTangent(
          "q[d]",
          "K[kr + d]",
          "Vv[kr + d]",
          "go[d]",
          "dq[d]",
          "dK[kr + d]",
          "dV[kr + d]",
          "dgo[d]",
        )
      }
    ${forD("acc[d] += dsd * K[kr + d];")}
    if (hk) { ${forD("acc[d] += ds * dK[kr + d];")} }
  }
  if (!live) { return; }
  ${forD("OUT[qr + d] = acc[d] * u.scale;")}
}`,
    };
  });
}

/**
 * Column kernel: ġK_j = scale Σ_i (dṠ_ij q_i + dS_ij q̇_i), ġV_j = Σ_i (Ṗ_ij gO_i + P_ij ġO_i).
 */
function bwdTanColSpec(D: number): KernelSpec {
  return spec("attn_bwd_tangent_col", D, () => {
    const b = bindings([
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["dGO", "VT"],
      ["SEG", "i32"],
      ["OK", "VT", true],
      ["OV", "VT", true],
    ]);
    return {
      name: "attn_bwd_tangent_col",
      bindings: b.kinds,
      code: /* wgsl */ `${HEAD(D)}
${b.wgsl}
${MAIN}${COL}${FLAGS_LET}
  var k: array<VT, NV>;
  var v: array<VT, NV>;
  var dk: array<VT, NV>;
  var dv: array<VT, NV>;
  var ak: array<VT, NV>;
  var av: array<VT, NV>;
  ${forD("k[d] = K[kr + d] * u.scale; v[d] = Vv[kr + d]; ak[d] = VT(0.0); av[d] = VT(0.0);")}
  if (hk) { ${forD("dk[d] = dK[kr + d] * u.scale;")} }
  if (hv) { ${forD("dv[d] = dV[kr + d];")} }
  for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i = i0; i < u.T; i++) {
      let vis = i >= myStart && segOk(b, i, j);
      let r = rb + i;
      let qr = r * NV;
      let st = ST[r];
      ${
        pairTangent(
          "Q[qr + d]",
          "k[d]",
          "v[d]",
          "GO[qr + d]",
          "dQ[qr + d]",
          "dk[d]",
          "dv[d]",
          "dGO[qr + d]",
        )
      }
      ${forD("ak[d] += dsd * Q[qr + d]; av[d] += pd * GO[qr + d];")}
      if (hq) { ${forD("ak[d] += ds * dQ[qr + d];")} }
      if (hg) { ${forD("av[d] += p * dGO[qr + d];")} }
    }
  }
  if (!live) { return; }
  ${forD("OK[kr + d] = ak[d] * u.scale; OV[kr + d] = av[d];")}
}`,
    };
  });
}

/**
 * The tangent of attentionBackward's outputs [ġQ, ġK, ġV] for tangents of its inputs
 * (q, k, v, O, L, gO, gL); absent tangents are zero and their terms are skipped. Returns
 * undefined when no tangent is present.
 */
export function attentionBackwardTangent(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  O: Tensor,
  L: Tensor,
  gO: Tensor,
  gL: Tensor | undefined,
  t: BwdTangents,
  m: AttnMask,
): [Tensor, Tensor, Tensor] | undefined {
  if (!t.dq && !t.dk && !t.dv && !t.dO && !t.dL && !t.dgO && !t.dgL) return undefined;
  const d = dims(q, k, v, m), rt = q.rt;
  const st = rowStats(d, O, L, gO, gL, t);
  const oq = rt.empty(q.shape), ok = rt.empty(k.shape), ov = rt.empty(v.shape);
  const bd = new Binder(rt);
  const ins = [
    q,
    k,
    v,
    gO,
    st,
    bd.opt(t.dq, F.dq),
    bd.opt(t.dk, F.dk),
    bd.opt(t.dv, F.dv),
    bd.opt(t.dgO, F.dgo),
    bd.seg(m),
  ];
  const fl = maskFlags(m) | bd.flags;
  rt.dispatch(
    ...choose(rt, d.D, bwdTanRowSgSpec, bwdTanRowSpec, [
      ...ins,
      oq,
      rt.uniform(uniformWords(d, d.B * d.H, fl, m.scale)),
    ]),
    headGrid(d.T, d.B * d.H),
  );
  bd.run(
    ...choose(rt, d.D, bwdTanColSgSpec, bwdTanColSpec, [
      ...ins,
      ok,
      ov,
      rt.uniform(uniformWords(d, d.B * d.Hkv, fl, m.scale)),
    ]),
    headGrid(d.S, d.B * d.Hkv),
  );
  st.dispose();
  return [oq, ok, ov];
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
  const D = c.dims.D, { q, k, v, O, L, gO, gL } = x;
  const delta = L.map((_, r) => dot64(gO, r * D, O, r * D, D) - gL[r]);
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

// ------------------------------------------------------------------ 8-lane subgroup variants

/**
 * On 8-lane subgroup CPU adapters (lavapipe) a per-lane load of a key row that every lane
 * of the subgroup needs is an 8-way gather of one address. The subgroup variants instead
 * stream the other side in blocks of 8 rows: lane l loads row (block + l) — 8 distinct
 * rows per gather — and the pair terms take each row from its lane with subgroupBroadcast
 * (a register permute). Same maths and masks as the plain kernels above; the block loop is
 * workgroup-uniform (as subgroup operations need) and invisible pairs get P = 0.
 */
export const attentionKernelConfig = {
  /**
   * "auto": subgroup variants where the adapter has 8-lane subgroups, reading their vec4
   * inputs as staged texels on CPU adapters (texels.ts: lavapipe's storage loads are
   * per-lane loops); tests force each. "texture" falls back to "subgroup" where D % 4 ≠ 0
   * or an input is too large for a texture.
   */
  family: "auto" as "auto" | "plain" | "subgroup" | "texture",
};
function useSg(rt: Runtime): boolean {
  const f = attentionKernelConfig.family;
  const ok = rt.hasSubgroups && rt.subgroupSize === 8;
  if ((f === "subgroup" || f === "texture") && !ok) {
    throw new Error("attention: the subgroup kernels need an adapter with 8-lane subgroups");
  }
  return f === "subgroup" || f === "texture" || (f === "auto" && ok);
}

/** Count of dispatches that read texels (tests check the texture family really ran). */
export const attentionTexelRuns = { count: 0 };

type SgMaker = (D: number, texels?: boolean) => KernelSpec;

/**
 * Pick the kernel for these bindings: plain, subgroup, or subgroup over texels — then
 * stage the texel inputs (slots 8 + binding index, clear of matmul's 0 and 1).
 */
function choose(
  rt: Runtime,
  D: number,
  sg: SgMaker,
  plain: (D: number) => KernelSpec,
  bs: Binding[],
): [KernelSpec, Binding[]] {
  if (!useSg(rt)) return [plain(D), bs];
  const f = attentionKernelConfig.family;
  const wanted = f === "texture" || (f === "auto" && rt.isCpuAdapter);
  if (wanted && vecOf(D).v4) {
    const spec = sg(D, true);
    const fits = spec.bindings.every((k, i) =>
      k !== "texture" || rt.texelsFit((bs[i] as Tensor).size)
    );
    if (fits) {
      attentionTexelRuns.count++;
      return [
        spec,
        bs.map((b, i) => (spec.bindings[i] === "texture" ? rt.texels(b as Tensor, 8 + i) : b)),
      ];
    }
  }
  return [sg(D, false), bs];
}

const SG_MAIN = `@compute @workgroup_size(${WG})
fn main(${ARGS}, @builtin(subgroup_invocation_id) lane: u32) {`;
const J8 = [0, 1, 2, 3, 4, 5, 6, 7];

/** A per-lane load of the other side's row chunk c (only when `cond`, a uniform test). */
interface SgLoad {
  readonly v: string;
  readonly arr: string;
  readonly cond?: string;
}
/** out_jj += vdot(own, other broadcast from lane jj). */
interface SgDot {
  readonly out: string;
  readonly own: string;
  readonly other: string;
  readonly cond?: string;
}
/** acc[c] += coef_jj · (other broadcast from lane jj). */
interface SgAcc {
  readonly acc: string;
  readonly other: string;
  readonly coef: string;
  readonly cond?: string;
}
const iff = (cond: string | undefined, code: string) => (cond ? `if (${cond}) { ${code} }` : code);

/**
 * One block of 8 pairs: phase 1 loads the other side's chunks and forms the dot products
 * for the 8 pairs; `scal(jj)` turns them into per-pair coefficients (names suffixed jj);
 * `mid` runs once per block; phase 3 reloads chunks and accumulates (acc scaled by
 * `accScale` first when given). `idx` = element offset of this lane's chunk c.
 */
function sgBlock(o: {
  idx: string;
  loads1: SgLoad[];
  dots: SgDot[];
  scal: (jj: number) => string;
  mid?: string;
  loads2: SgLoad[];
  accs: SgAcc[];
  accScale?: string;
}): string {
  const outs = [...new Set(o.dots.map((d) => d.out))];
  const decl = outs.map((n) => J8.map((j) => `var ${n}${j}: f32 = 0.0;`).join(" ")).join("\n");
  const load = (l: SgLoad) =>
    `var ${l.v}: VT = VT(0.0);${l.cond ? ` if (${l.cond}) {` : ""} ${l.v} = ${l.arr}[${o.idx}];${
      l.cond ? " }" : ""
    }`;
  const ph1 = o.dots.map((d) =>
    iff(
      d.cond,
      `let ${d.out}_o = ${d.own};\n` +
        J8.map((j) => `${d.out}${j} += vdot(${d.out}_o, subgroupBroadcast(${d.other}, ${j}u));`)
          .join("\n"),
    )
  ).join("\n");
  const byAcc = new Map<string, SgAcc[]>();
  for (const a of o.accs) byAcc.set(a.acc, [...(byAcc.get(a.acc) ?? []), a]);
  const ph3 = [...byAcc.entries()].map(([acc, list]) => {
    const first = `var ${acc}_n = ${o.accScale ? `${acc}[c] * ${o.accScale}` : `${acc}[c]`};`;
    const terms = list.map((a) =>
      iff(
        a.cond,
        J8.map((j) => `${acc}_n += ${a.coef}${j} * subgroupBroadcast(${a.other}, ${j}u);`).join(
          "\n",
        ),
      )
    ).join("\n");
    return `${first}\n${terms}\n${acc}[c] = ${acc}_n;`;
  }).join("\n");
  return `
    ${decl}
    for (var c = 0u; c < NV; c++) {
      ${o.loads1.map(load).join("\n")}
      ${ph1}
    }
    ${J8.map(o.scal).join("\n")}
    ${o.mid ?? ""}
    for (var c = 0u; c < NV; c++) {
      ${o.loads2.map(load).join("\n")}
      ${ph3}
    }`;
}

/** Row kernels: blocks of 8 keys; pair jj is key j0 + jj. */
const SG_ROW_LOOP = (body: string) => `
  let segT = select(0, SEG[b * u.T + t], has(${F.seg}u));
  for (var j0 = 0u; j0 < jEnd; j0 += 8u) {
    let jl = min(j0 + lane, u.S - 1u);
    let segL = select(0, SEG[b * u.S + jl], has(${F.seg}u));
    ${body}
  }`;
const sgRowVis = (jj: number) =>
  `let vis${jj} = j0 + ${jj}u < myEnd && segT == subgroupBroadcast(segL, ${jj}u);`;
/** Column kernels: per query head of the group, blocks of 8 queries; pair jj is i0b + jj. */
const SG_COL_LOOP = (body: string) => `
  let segJ = select(0, SEG[b * u.S + j], has(${F.seg}u));
  for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i0b = i0; i0b < u.T; i0b += 8u) {
      let il = min(i0b + lane, u.T - 1u);
      let r = rb + il;
      let segL = select(0, SEG[b * u.T + il], has(${F.seg}u));
      let stL = ST[r];
      ${body}
    }
  }`;
const sgColVis = (jj: number) =>
  `let i${jj} = i0b + ${jj}u;
  let vis${jj} = i${jj} < u.T && i${jj} >= myStart && segJ == subgroupBroadcast(segL, ${jj}u);
  let st${jj} = subgroupBroadcast(stL, ${jj}u);`;

function sgSpec(
  name: string,
  D: number,
  list: [string, string, boolean?][],
  body: string,
  texels = false,
) {
  const full = `${name}_${texels ? "tex" : "sg"}`;
  return spec(full, D, () => {
    const b = bindings(list, texels);
    const names = list.filter((_, i) => b.kinds[i] === "texture").map(([n]) => n);
    // HEAD's helpers (segOk) read SEG only, which stays a storage buffer.
    return {
      name: full,
      bindings: b.kinds,
      code: `${HEAD(D)}\n${b.wgsl}\n${viaTexels(body, names)}`,
    };
  });
}

function fwdSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_fwd",
    D,
    [["Q", "VT"], ["K", "VT"], ["Vv", "VT"], ["SEG", "i32"], ["O", "VT", true], ["L", "f32", true]],
    /* wgsl */ `${SG_MAIN}${ROW}
  var q: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}
  var m: f32 = -3.4028235e38;
  var l: f32 = 0.0;
  ${
      SG_ROW_LOOP(sgBlock({
        idx: "(kb + jl) * NV + c",
        loads1: [{ v: "kc", arr: "K" }],
        dots: [{ out: "s", own: "q[c]", other: "kc" }],
        scal: (j) => `${sgRowVis(j)}\nlet sv${j} = select(-3.4028235e38, s${j}, vis${j});`,
        mid: `
    let mn = max(m, max(max(max(sv0, sv1), max(sv2, sv3)), max(max(sv4, sv5), max(sv6, sv7))));
    let cr = exp(m - mn);
    ${J8.map((j) => `let p${j} = select(0.0, exp(s${j} - mn), vis${j});`).join("\n")}
    l = l * cr + ${J8.map((j) => `p${j}`).join(" + ")};
    m = mn;`,
        loads2: [{ v: "vc", arr: "Vv" }],
        accs: [{ acc: "acc", other: "vc", coef: "p" }],
        accScale: "cr",
      }))
    }
  let inv = select(0.0, 1.0 / l, l > 0.0);
  if (!live) { return; }
  ${forD("O[qr + d] = acc[d] * inv;")}
  L[id] = select(0.0, m + log(l), l > 0.0);
}`,
    texels,
  );
}

function fwdTanSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_fwd_tangent",
    D,
    [
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["O", "VT"],
      ["L", "f32"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["SEG", "i32"],
      ["OD", "VT", true],
      ["LD", "f32", true],
    ],
    /* wgsl */ `${SG_MAIN}${ROW}${FLAGS_LET}
  var q: array<VT, NV>;
  var dq: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}
  if (hq) { ${forD("dq[d] = dQ[qr + d] * u.scale;")} }
  let Li = L[id];
  var cs: f32 = 0.0;
  ${
      SG_ROW_LOOP(sgBlock({
        idx: "(kb + jl) * NV + c",
        loads1: [{ v: "kc", arr: "K" }, { v: "dkc", arr: "dK", cond: "hk" }],
        dots: [
          { out: "s", own: "q[c]", other: "kc" },
          { out: "sd", own: "dq[c]", other: "kc", cond: "hq" },
          { out: "sd", own: "q[c]", other: "dkc", cond: "hk" },
        ],
        scal: (j) =>
          `${sgRowVis(j)}
  let p${j} = select(0.0, exp(s${j} - Li), vis${j});
  let ps${j} = p${j} * sd${j};
  cs += ps${j};`,
        loads2: [{ v: "vc", arr: "Vv" }, { v: "dvc", arr: "dV", cond: "hv" }],
        accs: [
          { acc: "acc", other: "vc", coef: "ps" },
          { acc: "acc", other: "dvc", coef: "p", cond: "hv" },
        ],
      }))
    }
  if (!live) { return; }
  ${forD("OD[qr + d] = acc[d] - cs * O[qr + d];")}
  LD[id] = cs;
}`,
    texels,
  );
}

function bwdRowSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_bwd_row",
    D,
    [
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["SEG", "i32"],
      ["GQ", "VT", true],
    ],
    /* wgsl */ `${SG_MAIN}${ROW}
  var q: array<VT, NV>;
  var go: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; go[d] = GO[qr + d]; acc[d] = VT(0.0);")}
  let st = ST[id];
  ${
      SG_ROW_LOOP(sgBlock({
        idx: "(kb + jl) * NV + c",
        loads1: [{ v: "kc", arr: "K" }, { v: "vc", arr: "Vv" }],
        dots: [{ out: "s", own: "q[c]", other: "kc" }, { out: "dp", own: "go[c]", other: "vc" }],
        scal: (j) =>
          `${sgRowVis(j)}
  let ds${j} = select(0.0, exp(s${j} - st.x), vis${j}) * (dp${j} - st.y);`,
        loads2: [{ v: "kc", arr: "K" }],
        accs: [{ acc: "acc", other: "kc", coef: "ds" }],
      }))
    }
  if (!live) { return; }
  ${forD("GQ[qr + d] = acc[d] * u.scale;")}
}`,
    texels,
  );
}

function bwdColSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_bwd_col",
    D,
    [
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["SEG", "i32"],
      ["GK", "VT", true],
      ["GV", "VT", true],
    ],
    /* wgsl */ `${SG_MAIN}${COL}
  var k: array<VT, NV>;
  var v: array<VT, NV>;
  var ak: array<VT, NV>;
  var av: array<VT, NV>;
  ${forD("k[d] = K[kr + d] * u.scale; v[d] = Vv[kr + d]; ak[d] = VT(0.0); av[d] = VT(0.0);")}
  ${
      SG_COL_LOOP(sgBlock({
        idx: "r * NV + c",
        loads1: [{ v: "qc", arr: "Q" }, { v: "gc", arr: "GO" }],
        dots: [{ out: "s", own: "k[c]", other: "qc" }, { out: "dp", own: "v[c]", other: "gc" }],
        scal: (j) =>
          `${sgColVis(j)}
  let p${j} = select(0.0, exp(s${j} - st${j}.x), vis${j});
  let ds${j} = p${j} * (dp${j} - st${j}.y);`,
        loads2: [{ v: "qc", arr: "Q" }, { v: "gc", arr: "GO" }],
        accs: [{ acc: "ak", other: "qc", coef: "ds" }, { acc: "av", other: "gc", coef: "p" }],
      }))
    }
  if (!live) { return; }
  ${forD("GK[kr + d] = ak[d] * u.scale; GV[kr + d] = av[d];")}
}`,
    texels,
  );
}

/** Per-pair tangent coefficients (see pairTangent), for pair jj with stats `st`. */
const sgTanScal = (j: number, st: string) => `
  let p${j} = select(0.0, exp(s${j} - ${st}.x), vis${j});
  let pd${j} = p${j} * (sd${j} - ${st}.z);
  let ds${j} = p${j} * (dp${j} - ${st}.y);
  let dsd${j} = pd${j} * (dp${j} - ${st}.y) + p${j} * (dpd${j} - ${st}.w);`;

function bwdTanRowSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_bwd_tangent_row",
    D,
    [
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["dGO", "VT"],
      ["SEG", "i32"],
      ["OUT", "VT", true],
    ],
    /* wgsl */ `${SG_MAIN}${ROW}${FLAGS_LET}
  var q: array<VT, NV>;
  var go: array<VT, NV>;
  var dq: array<VT, NV>;
  var dgo: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; go[d] = GO[qr + d]; acc[d] = VT(0.0);")}
  if (hq) { ${forD("dq[d] = dQ[qr + d] * u.scale;")} }
  if (hg) { ${forD("dgo[d] = dGO[qr + d];")} }
  let st = ST[id];
  ${
      SG_ROW_LOOP(sgBlock({
        idx: "(kb + jl) * NV + c",
        loads1: [
          { v: "kc", arr: "K" },
          { v: "vc", arr: "Vv" },
          { v: "dkc", arr: "dK", cond: "hk" },
          { v: "dvc", arr: "dV", cond: "hv" },
        ],
        dots: [
          { out: "s", own: "q[c]", other: "kc" },
          { out: "dp", own: "go[c]", other: "vc" },
          { out: "sd", own: "dq[c]", other: "kc", cond: "hq" },
          { out: "sd", own: "q[c]", other: "dkc", cond: "hk" },
          { out: "dpd", own: "dgo[c]", other: "vc", cond: "hg" },
          { out: "dpd", own: "go[c]", other: "dvc", cond: "hv" },
        ],
        scal: (j) => `${sgRowVis(j)}${sgTanScal(j, "st")}`,
        loads2: [{ v: "kc", arr: "K" }, { v: "dkc", arr: "dK", cond: "hk" }],
        accs: [
          { acc: "acc", other: "kc", coef: "dsd" },
          { acc: "acc", other: "dkc", coef: "ds", cond: "hk" },
        ],
      }))
    }
  if (!live) { return; }
  ${forD("OUT[qr + d] = acc[d] * u.scale;")}
}`,
    texels,
  );
}

function bwdTanColSgSpec(D: number, texels = false): KernelSpec {
  return sgSpec(
    "attn_bwd_tangent_col",
    D,
    [
      ["Q", "VT"],
      ["K", "VT"],
      ["Vv", "VT"],
      ["GO", "VT"],
      ["ST", "vec4f"],
      ["dQ", "VT"],
      ["dK", "VT"],
      ["dV", "VT"],
      ["dGO", "VT"],
      ["SEG", "i32"],
      ["OK", "VT", true],
      ["OV", "VT", true],
    ],
    /* wgsl */ `${SG_MAIN}${COL}${FLAGS_LET}
  var k: array<VT, NV>;
  var v: array<VT, NV>;
  var dk: array<VT, NV>;
  var dv: array<VT, NV>;
  var ak: array<VT, NV>;
  var av: array<VT, NV>;
  ${forD("k[d] = K[kr + d] * u.scale; v[d] = Vv[kr + d]; ak[d] = VT(0.0); av[d] = VT(0.0);")}
  if (hk) { ${forD("dk[d] = dK[kr + d] * u.scale;")} }
  if (hv) { ${forD("dv[d] = dV[kr + d];")} }
  ${
      SG_COL_LOOP(sgBlock({
        idx: "r * NV + c",
        loads1: [
          { v: "qc", arr: "Q" },
          { v: "gc", arr: "GO" },
          { v: "dqc", arr: "dQ", cond: "hq" },
          { v: "dgc", arr: "dGO", cond: "hg" },
        ],
        dots: [
          { out: "s", own: "k[c]", other: "qc" },
          { out: "dp", own: "v[c]", other: "gc" },
          { out: "sd", own: "k[c]", other: "dqc", cond: "hq" },
          { out: "sd", own: "dk[c]", other: "qc", cond: "hk" },
          { out: "dpd", own: "v[c]", other: "dgc", cond: "hg" },
          { out: "dpd", own: "dv[c]", other: "gc", cond: "hv" },
        ],
        scal: (j) => `${sgColVis(j)}${sgTanScal(j, `st${j}`)}`,
        loads2: [
          { v: "qc", arr: "Q" },
          { v: "gc", arr: "GO" },
          { v: "dqc", arr: "dQ", cond: "hq" },
          { v: "dgc", arr: "dGO", cond: "hg" },
        ],
        accs: [
          { acc: "ak", other: "qc", coef: "dsd" },
          { acc: "ak", other: "dqc", coef: "ds", cond: "hq" },
          { acc: "av", other: "gc", coef: "pd" },
          { acc: "av", other: "dgc", coef: "p", cond: "hg" },
        ],
      }))
    }
  if (!live) { return; }
  ${forD("OK[kr + d] = ak[d] * u.scale; OV[kr + d] = av[d];")}
}`,
    texels,
  );
}
