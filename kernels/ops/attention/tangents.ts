/**
 * Tangent (JVP) kernels. The forward's tangent [Ȯ, L̇] (one row kernel) and the backward's
 * tangent [ġQ, ġK, ġV] (row statistics, then a row and a column kernel, as the backward),
 * which gives forward-over-reverse Hessian-vector products without a T×S matrix. Absent
 * tangents are zero: their bindings are placeholders and their terms are skipped (flags).
 * References: attentionForwardTangent64, attentionBackwardTangent64 (reference.ts).
 */
import type { Tensor } from "../../runtime/tensor.ts";
import { COL_PRE, ROW_PRE, rowThenCol, S_DP } from "./backward.ts";
import {
  type AttnKernelOptions,
  type AttnMask,
  Binder,
  type BwdTangents,
  dims,
  type FwdTangents,
} from "./launch.ts";
import type { FlashStage } from "./flash.ts";
import type { AttnKernel } from "./specs.ts";
import type { SgDot } from "./subgroup.ts";
import { type BindList, dotInto, F, forD } from "./wgsl.ts";

/** The key side the row kernels stage per flash tile (tangents only when bound). */
const KEY_STAGE: FlashStage[] = [
  { arr: "K" },
  { arr: "Vv" },
  { arr: "dK", cond: "hk" },
  { arr: "dV", cond: "hv" },
];

/** The row's own q̇ (scaled), when bound. */
const DQ_PRE = `
  var dq: array<VT, NV>;
  if (hq) { ${forD("dq[d] = dQ[qr + d] * u.scale;")} }`;

/**
 * One lane per query row. With P_ij = exp(s_ij − L_i), Ṡ_ij = scale(q̇_i·k_j + q_i·k̇_j):
 * L̇_i = c_i = Σ_j P_ij Ṡ_ij,  Ȯ_i = Σ_j P_ij Ṡ_ij v_j − c_i O_i + Σ_j P_ij v̇_j.
 */
const FWD_TAN: AttnKernel = {
  name: "attn_fwd_tangent",
  side: "row",
  tangents: true,
  list: [
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
  pre: `
  var q: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}${DQ_PRE}
  let Li = L[id];
  var cs: f32 = 0.0;`,
  plain: `
    var s: f32 = 0.0;
    ${dotInto("s", "q[d]", "K[kr + d]")}
    let p = select(0.0, exp(s - Li), vis);
    var sd: f32 = 0.0;
    if (hq) { ${dotInto("sd", "dq[d]", "K[kr + d]")} }
    if (hk) { ${dotInto("sd", "q[d]", "dK[kr + d]")} }
    let ps = p * sd;
    cs += ps;
    ${forD("acc[d] += ps * Vv[kr + d];")}
    if (hv) { ${forD("acc[d] += p * dV[kr + d];")} }`,
  sg: {
    loads1: [{ v: "kc", arr: "K" }, { v: "dkc", arr: "dK", cond: "hk" }],
    dots: [
      { out: "s", own: "q[c]", other: "kc" },
      { out: "sd", own: "dq[c]", other: "kc", cond: "hq" },
      { out: "sd", own: "q[c]", other: "dkc", cond: "hk" },
    ],
    scal: (j) =>
      `let p${j} = select(0.0, exp(s${j} - Li), vis${j});
  let ps${j} = p${j} * sd${j};
  cs += ps${j};`,
    loads2: [{ v: "vc", arr: "Vv" }, { v: "dvc", arr: "dV", cond: "hv" }],
    accs: [
      { acc: "acc", other: "vc", coef: "ps" },
      { acc: "acc", other: "dvc", coef: "p", cond: "hv" },
    ],
  },
  flash: { stage: KEY_STAGE },
  post: `  if (!live) { return; }
  ${forD("OD[qr + d] = acc[d] - cs * O[qr + d];")}
  LD[id] = cs;`,
};

/** [Ȯ, L̇] for tangents of q, k, v (absent = zero); O, L from attentionForward. */
export function attentionForwardTangent(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  O: Tensor,
  L: Tensor,
  t: FwdTangents,
  m: AttnMask,
  o: AttnKernelOptions = {},
): [Tensor, Tensor] {
  const d = dims(q, k, v, m), rt = q.rt;
  const od = rt.empty(q.shape), ld = rt.empty(L.shape);
  const bd = new Binder(rt);
  bd.launch(FWD_TAN, d, m, [
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
  ], o);
  bd.release();
  return [od, ld];
}

// ------------------------------------------------------------------ backward tangent

/** Inputs of both backward-tangent kernels (the outputs follow). */
const IN: BindList = [
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
];

/** Operand names of the pair terms: the q side (q, gO and tangents) and the k side. */
interface PairOps {
  readonly q: string;
  readonly k: string;
  readonly v: string;
  readonly go: string;
  readonly dq: string;
  readonly dk: string;
  readonly dv: string;
  readonly dgo: string;
}

/**
 * The pair terms both plain kernels share. With Ṡ = scale(q̇·k + q·k̇), Ṗ = P(Ṡ − L̇),
 * dP = gO·v, dṖ = ġO·v + gO·v̇:  dS = P(dP − Δ),  dṠ = Ṗ(dP − Δ) + P(dṖ − Δ̇).
 * q / k here are already scaled by `scale`; the operands name the d-th slots.
 */
function pairTangent(o: PairOps): string {
  return `${S_DP(o.q, o.k, o.go, o.v)}
    var sd: f32 = 0.0;
    if (hq) { ${dotInto("sd", o.dq, o.k)} }
    if (hk) { ${dotInto("sd", o.q, o.dk)} }
    var dpd: f32 = 0.0;
    if (hg) { ${dotInto("dpd", o.dgo, o.v)} }
    if (hv) { ${dotInto("dpd", o.go, o.dv)} }
    let p = select(0.0, exp(s - st.x), vis);
    let pd = p * (sd - st.z);
    let ds = p * (dp - st.y);
    let dsd = pd * (dp - st.y) + p * (dpd - st.w);`;
}
/**
 * The same six dot products (s, dP, Ṡ, dṖ) for a subgroup block: the lane's own side is
 * the q side in row kernels, the k side in column kernels; the other side is broadcast.
 */
function tanDots(o: PairOps, side: "row" | "col"): SgDot[] {
  const dot = (out: string, qs: string, ks: string, cond?: string): SgDot =>
    side === "row" ? { out, own: qs, other: ks, cond } : { out, own: ks, other: qs, cond };
  return [
    dot("s", o.q, o.k),
    dot("dp", o.go, o.v),
    dot("sd", o.dq, o.k, "hq"),
    dot("sd", o.q, o.dk, "hk"),
    dot("dpd", o.dgo, o.v, "hg"),
    dot("dpd", o.go, o.dv, "hv"),
  ];
}
/** pairTangent's coefficients for pair jj of a subgroup block, with row statistics `st`. */
const sgTanScal = (j: number, st: string) =>
  `let p${j} = select(0.0, exp(s${j} - ${st}.x), vis${j});
  let pd${j} = p${j} * (sd${j} - ${st}.z);
  let ds${j} = p${j} * (dp${j} - ${st}.y);
  let dsd${j} = pd${j} * (dp${j} - ${st}.y) + p${j} * (dpd${j} - ${st}.w);`;

/** Row kernel: ġQ_i = scale Σ_j (dṠ_ij k_j + dS_ij k̇_j). */
const BWD_TAN_ROW: AttnKernel = {
  name: "attn_bwd_tangent_row",
  side: "row",
  tangents: true,
  list: [...IN, ["OUT", "VT", true]],
  pre: `${ROW_PRE}${DQ_PRE}
  var dgo: array<VT, NV>;
  if (hg) { ${forD("dgo[d] = dGO[qr + d];")} }`,
  plain: `${
    pairTangent({
      q: "q[d]",
      k: "K[kr + d]",
      v: "Vv[kr + d]",
      go: "go[d]",
      dq: "dq[d]",
      dk: "dK[kr + d]",
      dv: "dV[kr + d]",
      dgo: "dgo[d]",
    })
  }
    ${forD("acc[d] += dsd * K[kr + d];")}
    if (hk) { ${forD("acc[d] += ds * dK[kr + d];")} }`,
  sg: {
    loads1: [
      { v: "kc", arr: "K" },
      { v: "vc", arr: "Vv" },
      { v: "dkc", arr: "dK", cond: "hk" },
      { v: "dvc", arr: "dV", cond: "hv" },
    ],
    dots: tanDots({
      q: "q[c]",
      k: "kc",
      v: "vc",
      go: "go[c]",
      dq: "dq[c]",
      dk: "dkc",
      dv: "dvc",
      dgo: "dgo[c]",
    }, "row"),
    scal: (j) => sgTanScal(j, "st"),
    loads2: [{ v: "kc", arr: "K" }, { v: "dkc", arr: "dK", cond: "hk" }],
    accs: [
      { acc: "acc", other: "kc", coef: "dsd" },
      { acc: "acc", other: "dkc", coef: "ds", cond: "hk" },
    ],
  },
  flash: { stage: KEY_STAGE },
  post: `  if (!live) { return; }
  ${forD("OUT[qr + d] = acc[d] * u.scale;")}`,
};

/** The column's other side (q, gO and their tangents), as the subgroup blocks load it. */
const COL_LOADS = [
  { v: "qc", arr: "Q" },
  { v: "gc", arr: "GO" },
  { v: "dqc", arr: "dQ", cond: "hq" },
  { v: "dgc", arr: "dGO", cond: "hg" },
];

/**
 * Column kernel: ġK_j = scale Σ_i (dṠ_ij q_i + dS_ij q̇_i), ġV_j = Σ_i (Ṗ_ij gO_i + P_ij ġO_i).
 */
const BWD_TAN_COL: AttnKernel = {
  name: "attn_bwd_tangent_col",
  side: "col",
  tangents: true,
  list: [...IN, ["OK", "VT", true], ["OV", "VT", true]],
  pre: `${COL_PRE}
  var dk: array<VT, NV>;
  var dv: array<VT, NV>;
  if (hk) { ${forD("dk[d] = dK[kr + d] * u.scale;")} }
  if (hv) { ${forD("dv[d] = dV[kr + d];")} }`,
  plain: `${
    pairTangent({
      q: "Q[qr + d]",
      k: "k[d]",
      v: "v[d]",
      go: "GO[qr + d]",
      dq: "dQ[qr + d]",
      dk: "dk[d]",
      dv: "dv[d]",
      dgo: "dGO[qr + d]",
    })
  }
      ${forD("ak[d] += dsd * Q[qr + d]; av[d] += pd * GO[qr + d];")}
      if (hq) { ${forD("ak[d] += ds * dQ[qr + d];")} }
      if (hg) { ${forD("av[d] += p * dGO[qr + d];")} }`,
  sg: {
    loads1: COL_LOADS,
    dots: tanDots({
      q: "qc",
      k: "k[c]",
      v: "v[c]",
      go: "gc",
      dq: "dqc",
      dk: "dk[c]",
      dv: "dv[c]",
      dgo: "dgc",
    }, "col"),
    scal: (j) => sgTanScal(j, `st${j}`),
    loads2: COL_LOADS,
    accs: [
      { acc: "ak", other: "qc", coef: "dsd" },
      { acc: "ak", other: "dqc", coef: "ds", cond: "hq" },
      { acc: "av", other: "gc", coef: "pd" },
      { acc: "av", other: "dgc", coef: "p", cond: "hg" },
    ],
  },
  flash: {
    stage: [{ arr: "Q" }, { arr: "GO" }, { arr: "dQ", cond: "hq" }, { arr: "dGO", cond: "hg" }],
  },
  post: `  if (!live) { return; }
  ${forD("OK[kr + d] = ak[d] * u.scale; OV[kr + d] = av[d];")}`,
};

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
  o: AttnKernelOptions = {},
): [Tensor, Tensor, Tensor] | undefined {
  if (!t.dq && !t.dk && !t.dv && !t.dO && !t.dL && !t.dgO && !t.dgL) return undefined;
  const x = { q, k, v, O, L, gO, gL };
  return rowThenCol(BWD_TAN_ROW, BWD_TAN_COL, x, t, m, o, (bd) => [
    bd.opt(t.dq, F.dq),
    bd.opt(t.dk, F.dk),
    bd.opt(t.dv, F.dv),
    bd.opt(t.dgO, F.dgo),
  ]);
}
