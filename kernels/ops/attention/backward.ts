/**
 * Backward kernels: [gQ, gK, gV] from the output cotangent gO (and optionally gL, the
 * cotangent of L). A lane kernel first forms the row statistics ST; then a row kernel
 * (one lane per query row) gives gQ and a column kernel (one lane per key row, looping over
 * the query heads of its group) gives gK and gV — no atomics. With P_ij = exp(s_ij − L_i)
 * and Δ_i = gO_i·O_i − gL_i: dS_ij = P_ij (gO_i·v_j − Δ_i), gQ_i = scale Σ_j dS_ij k_j,
 * gK_j = scale Σ_i dS_ij q_i, gV_j = Σ_i P_ij gO_i. Reference: attentionBackward64.
 */
import type { Tensor } from "../../runtime/tensor.ts";
import type { KernelSpec } from "../../runtime/kernel.ts";
import {
  type AttnKernelOptions,
  type AttnMask,
  Binder,
  type BwdTangents,
  type Dims,
  dims,
} from "./launch.ts";
import type { AttnKernel } from "./specs.ts";
import { bindings, type BindList, dotInto, F, forD, HEAD, MAIN_LANE, spec } from "./wgsl.ts";

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

/** ST (B·H·T, 4) for the backward (t empty) or its tangent. */
export function rowStats(
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
  bd.lanes(statsSpec(d.D), d, rows, [
    O,
    L,
    gO,
    bd.opt(gL, F.gL),
    bd.opt(t.dO, F.dO),
    bd.opt(t.dL, F.dL),
    bd.opt(t.dgO, F.dgo),
    bd.opt(t.dgL, F.dgL),
    st,
  ]);
  bd.release();
  return st;
}

/** Inputs of the backward's row and column kernels (the outputs follow). */
const IN: BindList = [["Q", "VT"], ["K", "VT"], ["Vv", "VT"], ["GO", "VT"], ["ST", "vec4f"]];
/** The row kernels' own row: q (scaled), gO, the accumulator, the row statistics. */
export const ROW_PRE = `
  var q: array<VT, NV>;
  var go: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; go[d] = GO[qr + d]; acc[d] = VT(0.0);")}
  let st = ST[id];`;
/** The column kernels' own key row: k (scaled), v, the two accumulators. */
export const COL_PRE = `
  var k: array<VT, NV>;
  var v: array<VT, NV>;
  var ak: array<VT, NV>;
  var av: array<VT, NV>;
  ${forD("k[d] = K[kr + d] * u.scale; v[d] = Vv[kr + d]; ak[d] = VT(0.0); av[d] = VT(0.0);")}`;
/** s = q·k (q or k already scaled) and dP = gO·v for one pair. */
export const S_DP = (q: string, k: string, go: string, v: string): string => `
    var s: f32 = 0.0;
    var dp: f32 = 0.0;
    ${forD(`s += vdot(${q}, ${k}); dp += vdot(${go}, ${v});`)}`;

/** Row kernel: gQ_i = scale Σ_j dS_ij k_j. */
const BWD_ROW: AttnKernel = {
  name: "attn_bwd_row",
  side: "row",
  list: [...IN, ["SEG", "i32"], ["GQ", "VT", true]],
  pre: ROW_PRE,
  plain: `${S_DP("q[d]", "K[kr + d]", "go[d]", "Vv[kr + d]")}
    let ds = select(0.0, exp(s - st.x), vis) * (dp - st.y);
    ${forD("acc[d] += ds * K[kr + d];")}`,
  sg: {
    loads1: [{ v: "kc", arr: "K" }, { v: "vc", arr: "Vv" }],
    dots: [{ out: "s", own: "q[c]", other: "kc" }, { out: "dp", own: "go[c]", other: "vc" }],
    scal: (j) => `let ds${j} = select(0.0, exp(s${j} - st.x), vis${j}) * (dp${j} - st.y);`,
    loads2: [{ v: "kc", arr: "K" }],
    accs: [{ acc: "acc", other: "kc", coef: "ds" }],
  },
  flash: { stage: [{ arr: "K" }, { arr: "Vv" }] },
  post: `  if (!live) { return; }
  ${forD("GQ[qr + d] = acc[d] * u.scale;")}`,
};

/**
 * Column kernel (one lane per key row j of kv head g, looping over the query heads of g and
 * the queries that see j): gK_j = scale Σ_i dS_ij q_i, gV_j = Σ_i P_ij gO_i.
 */
const BWD_COL: AttnKernel = {
  name: "attn_bwd_col",
  side: "col",
  list: [...IN, ["SEG", "i32"], ["GK", "VT", true], ["GV", "VT", true]],
  pre: COL_PRE,
  plain: `${S_DP("Q[qr + d]", "k[d]", "GO[qr + d]", "v[d]")}
      let p = select(0.0, exp(s - st.x), vis);
      let ds = p * (dp - st.y);
      ${forD("ak[d] += ds * Q[qr + d]; av[d] += p * GO[qr + d];")}`,
  sg: {
    loads1: [{ v: "qc", arr: "Q" }, { v: "gc", arr: "GO" }],
    dots: [{ out: "s", own: "k[c]", other: "qc" }, { out: "dp", own: "v[c]", other: "gc" }],
    scal: (j) =>
      `let p${j} = select(0.0, exp(s${j} - st${j}.x), vis${j});
  let ds${j} = p${j} * (dp${j} - st${j}.y);`,
    loads2: [{ v: "qc", arr: "Q" }, { v: "gc", arr: "GO" }],
    accs: [{ acc: "ak", other: "qc", coef: "ds" }, { acc: "av", other: "gc", coef: "p" }],
  },
  flash: { stage: [{ arr: "Q" }, { arr: "GO" }] },
  post: `  if (!live) { return; }
  ${forD("GK[kr + d] = ak[d] * u.scale; GV[kr + d] = av[d];")}`,
};

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
  o: AttnKernelOptions = {},
): [Tensor, Tensor, Tensor] {
  return rowThenCol(BWD_ROW, BWD_COL, { q, k, v, O, L, gO, gL }, {}, m, o, () => []);
}

/** The backward's inputs (gL optional). */
export interface BwdInputs {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly O: Tensor;
  readonly L: Tensor;
  readonly gO: Tensor;
  readonly gL?: Tensor;
}

/**
 * The backward's shape, shared by its tangent: row statistics, then the row kernel (→ the
 * q-side output) and the column kernel (→ the k and v outputs), both over
 * [q, k, v, gO, ST, ...extra(bd), SEG] (extra: the bound tangents, in binding order).
 */
export function rowThenCol(
  row: AttnKernel,
  col: AttnKernel,
  x: BwdInputs,
  t: BwdTangents,
  m: AttnMask,
  o: AttnKernelOptions,
  extra: (bd: Binder) => Tensor[],
): [Tensor, Tensor, Tensor] {
  const d = dims(x.q, x.k, x.v, m), rt = x.q.rt;
  const st = rowStats(d, x.O, x.L, x.gO, x.gL, t);
  const gq = rt.empty(x.q.shape), gk = rt.empty(x.k.shape), gv = rt.empty(x.v.shape);
  const bd = new Binder(rt);
  const ins = [x.q, x.k, x.v, x.gO, st, ...extra(bd), bd.seg(m)];
  bd.launch(row, d, m, [...ins, gq], o);
  bd.launch(col, d, m, [...ins, gk, gv], o);
  bd.release();
  st.dispose();
  return [gq, gk, gv];
}
