/**
 * AdamW step and its adjoint as WGSL kernels: one dispatch per parameter tensor
 * (`adamwStep`, `adamwAdjoint`), or one per packed parameter set (`adamwStepPacked`,
 * `adamwAdjointPacked`: every tensor of a packed.ts layout in one buffer, each with its own
 * learning rate). Both run the same per-element math (STEP / adjointMath below).
 * Reference: adamw_math.ts beside it (float64). The learning rate is read from a GPU
 * tensor of learned rates (`lr[lrIndex]`), so meta-learned rates never leave the GPU and
 * one pipeline serves every tensor, step and size (sizes travel in a uniform).
 */
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, kernel } from "../runtime/kernel.ts";
import type { AdamWHyper } from "./adamw_math.ts";
import { biasCorrections } from "./adamw_math.ts";
import { blockTable, PACK_BLOCK, type PackedLayout, tensorTable } from "./packed.ts";

const WG = 64;

/** The uniform block of every AdamW kernel; the packed ones add `count` (tensors in the set). */
const PARAMS = {
  n: "u32",
  lr_index: "u32",
  c1: "f32",
  c2: "f32",
  b1: "f32",
  b2: "f32",
  eps: "f32",
  wd: "f32",
} as const;
const PACKED_PARAMS = { ...PARAMS, count: "u32" } as const;
/**
 * The kernels' tensors with elements of type `t` (the rates and partial sums stay f32): the
 * step's p, m, v, g, lr (read) and p', m', v' (written); the adjoint's p̄, m̄, v̄ (read) and
 * p̄', m̄', v̄', ḡ, per-workgroup lr̄ partial sums.
 */
const tensors = <T extends "f32" | "vec4f">(t: T) => ({
  stepIn: { P: t, M: t, V: t, G: t, LR: "f32" },
  stepOut: { P2: t, M2: t, V2: t },
  adjIn: { PB: t, MB: t, VB: t },
  adjOut: { PB2: t, MB2: t, VB2: t, GB: t, PART: "f32" },
} as const);
const { stepIn: STEP_IN, stepOut: STEP_OUT, adjIn: ADJ_IN, adjOut: ADJ_OUT } = tensors("f32");
const RED = `var<workgroup> red: array<f32, ${WG}>;`;

/** One element's step (needs i, lr): p, m, v, g → p', m', v'. */
const STEP = /* wgsl */ `
  let g = G[i];
  let m = u.b1 * M[i] + (1.0 - u.b1) * g;
  let v = u.b2 * V[i] + (1.0 - u.b2) * g * g;
  let upd = u.c1 * m / (u.c2 * sqrt(v) + u.eps);
  P2[i] = P[i] * (1.0 - lr * u.wd) - lr * upd;
  M2[i] = m;
  V2[i] = v;`;

/**
 * One element's adjoint (needs i, lr; sets lr_part) for elements of type `t`: p̄', m̄', v̄', ḡ.
 * With vec4s, lr_part sums the four lanes' terms.
 */
const adjointMath = (t: "f32" | "vec4f") => /* wgsl */ `
    let g = G[i];
    let m = u.b1 * M[i] + (1.0 - u.b1) * g;
    let v = u.b2 * V[i] + (1.0 - u.b2) * g * g;
    let sv = sqrt(v);
    let den = u.c2 * sv + u.eps;
    let upd = u.c1 * m / den;
    let pb = PB[i];
    lr_part = ${t === "f32" ? "pb * (-P[i] * u.wd - upd)" : "dot(pb, -P[i] * u.wd - upd)"};
    PB2[i] = pb * (1.0 - lr * u.wd);
    let ub = -lr * pb;
    let mt = MB[i] + ub * u.c1 / den;
    // v = 0 only when every gradient so far was 0: the v-path term vanishes in the limit.
    let vterm = ub * (-u.c1 * m * u.c2) / (den * den * 2.0 * sv);
    let vt = VB[i] + select(${t}(0.0), vterm, sv > ${t}(0.0));
    MB2[i] = u.b1 * mt;
    VB2[i] = u.b2 * vt;
    GB[i] = (1.0 - u.b1) * mt + 2.0 * (1.0 - u.b2) * g * vt;`;

/** The workgroup's (`wg` lanes) sum of lr_part into PART[workgroup] (the adjoint's epilogue). */
const partialSum = (wg: number) => /* wgsl */ `
  red[lid] = lr_part;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { PART[wid.x + wid.y * nwg.x] = red[0]; }`;

/** p, m, v, g, lr → p', m', v' */
const stepSpec = kernel({
  name: "adamw_step",
  inputs: STEP_IN,
  outputs: STEP_OUT,
  uniforms: PARAMS,
  id: "i",
  lanes: "u.n",
  body: `  let lr = LR[u.lr_index];${STEP}`,
});

/**
 * Adjoint: p, m, v, g, lr, p̄, m̄, v̄ → p̄', m̄', v̄', ḡ and per-workgroup partial sums of the
 * learning-rate adjoint (reduced by `lrReduceSpec`).
 */
const adjointSpec = kernel({
  name: "adamw_adjoint",
  inputs: { ...STEP_IN, ...ADJ_IN },
  outputs: ADJ_OUT,
  uniforms: PARAMS,
  decls: RED,
  id: "i",
  unguarded: true,
  body: /* wgsl */ `
  var lr_part = 0.0;
  if (i < u.n) {
    let lr = LR[u.lr_index];${adjointMath("f32")}
  }${partialSum(WG)}`,
});

/** LRB[lr_index] += Σ PART[0..n) (one invocation; partial counts are small). */
const lrReduceSpec = kernel({
  name: "adamw_lr_reduce",
  inputs: { PART: "f32" },
  outputs: { LRB: "f32" },
  uniforms: PARAMS,
  body: /* wgsl */ `
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var k = 0u; k < u.n; k++) { s += PART[k]; }
  LRB[u.lr_index] += s;
}`,
});

function params(n: number, lrIndex: number, t: number, h: AdamWHyper) {
  const { c1, c2 } = biasCorrections(h, t);
  const { beta1: b1, beta2: b2, eps, weightDecay: wd } = h;
  return { n, lr_index: lrIndex, c1, c2, b1, b2, eps, wd };
}

function check(...ts: Tensor[]) {
  const n = ts[0].size;
  for (const t of ts) {
    if (t.size !== n || t.dtype !== "f32") {
      throw new RangeError(`adamw: tensors must be f32 of one size; got ${ts.map(String)}`);
    }
  }
}

/**
 * One AdamW step at 1-based step `t` with learning rate `lr[lrIndex]`.
 * Out of place (the meta-gradient keeps every step's state) unless `out` is given.
 */
export function adamwStep(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  lr: Tensor,
  lrIndex: number,
  t: number,
  h: AdamWHyper,
  out?: { p: Tensor; m: Tensor; v: Tensor },
): { p: Tensor; m: Tensor; v: Tensor } {
  check(p, m, v, g);
  const rt = p.rt;
  const o = out ?? { p: rt.empty(p.shape), m: rt.empty(p.shape), v: rt.empty(p.shape) };
  const n = p.size;
  stepSpec.run(rt, [p, m, v, g, lr, o.p, o.m, o.v], params(n, lrIndex, t, h), n);
  return o;
}

/**
 * Adjoint of `adamwStep`; accumulates the learning-rate adjoint into `lrBar[lrIndex]`.
 * Returns p̄, m̄, v̄ of the step's inputs and ḡ (the vector for the Hessian-vector product).
 */
export function adamwAdjoint(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  lr: Tensor,
  lrIndex: number,
  t: number,
  h: AdamWHyper,
  pBar: Tensor,
  mBar: Tensor,
  vBar: Tensor,
  lrBar: Tensor,
): { p: Tensor; m: Tensor; v: Tensor; g: Tensor } {
  check(p, m, v, g, pBar, mBar, vBar);
  const rt = p.rt;
  const n = p.size;
  const groups = cdiv(n, WG);
  const o = {
    p: rt.empty(p.shape),
    m: rt.empty(p.shape),
    v: rt.empty(p.shape),
    g: rt.empty(p.shape),
  };
  const part = rt.empty([groups]);
  const bind = [p, m, v, g, lr, pBar, mBar, vBar, o.p, o.m, o.v, o.g, part];
  adjointSpec.run(rt, bind, params(n, lrIndex, t, h), n);
  lrReduceSpec.run(rt, [part, lrBar], params(groups, lrIndex, t, h), [1]);
  part.dispose();
  return o;
}

// ------------------------------------------------------------------ packed parameter sets

/**
 * The packed kernels move a vec4 per lane: 16 lanes cover one 64-element block (a workgroup,
 * inside one tensor as packed.ts guarantees), with a quarter of the loads and stores and a
 * 16-entry partial sum. Same per-element math as STEP / adjointMath, on vec4s.
 */
const PWG = PACK_BLOCK / 4;
const { stepIn: STEP4_IN, stepOut: STEP4_OUT, adjIn: ADJ4_IN, adjOut: ADJ4_OUT } = tensors("vec4f");

/**
 * Packed p, m, v, g, lr, tensor table (TID: each workgroup's tensor, packed.ts) → p', m', v';
 * tensor j steps with LR[lr_index + j].
 */
const stepPackedSpec = kernel({
  name: "adamw_step_packed",
  inputs: { ...STEP4_IN, TID: "u32" },
  outputs: STEP4_OUT,
  uniforms: PACKED_PARAMS,
  wg: PWG,
  id: "i",
  lanes: "u.n / 4u",
  body: `  let lr = LR[u.lr_index + TID[wid.x + wid.y * nwg.x]];${STEP}`,
});

/** The adjoint over a packed set: as `adjointSpec`, each workgroup inside one tensor (TID). */
const adjointPackedSpec = kernel({
  name: "adamw_adjoint_packed",
  inputs: { ...STEP4_IN, TID: "u32", ...ADJ4_IN },
  outputs: ADJ4_OUT,
  uniforms: PACKED_PARAMS,
  wg: PWG,
  decls: `var<workgroup> red: array<f32, ${PWG}>;`,
  id: "i",
  unguarded: true,
  body: /* wgsl */ `
  var lr_part = 0.0;
  if (i < u.n / 4u) {
    let lr = LR[u.lr_index + TID[wid.x + wid.y * nwg.x]];${adjointMath("vec4f")}
  }${partialSum(PWG)}`,
});

/**
 * LRB[lr_index + j] += Σ PART over tensor j's workgroups, one lane per tensor (each sums its
 * partials in order, as `lrReduceSpec` does for one tensor).
 */
const lrReducePackedSpec = kernel({
  name: "adamw_lr_reduce_packed",
  inputs: { PART: "f32", BLK: "u32" },
  outputs: { LRB: "f32" },
  uniforms: PACKED_PARAMS,
  id: "i",
  lanes: "u.count",
  body: /* wgsl */ `
  var s = 0.0;
  for (var k = BLK[i]; k < BLK[i + 1u]; k++) { s += PART[k]; }
  LRB[u.lr_index + i] += s;`,
});

const packedParams = (layout: PackedLayout, lrIndex: number, t: number, h: AdamWHyper) => ({
  ...params(layout.total, lrIndex, t, h),
  count: layout.count,
});

function checkPacked(layout: PackedLayout, ...ts: Tensor[]) {
  for (const t of ts) {
    if (t.size !== layout.total || t.dtype !== "f32") {
      throw new RangeError(
        `adamw (packed): tensors must be f32 packed buffers of ${layout.total}; got ${
          ts.map(String)
        }`,
      );
    }
  }
}

/**
 * One AdamW step of every tensor of a packed set (one dispatch): tensor j of `layout` steps
 * with learning rate `lr[lrIndex + j]`. p, m, v, g are packed buffers (packed.ts); the results
 * are new packed buffers owned by the caller (outside every scope).
 */
export function adamwStepPacked(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  lr: Tensor,
  lrIndex: number,
  layout: PackedLayout,
  t: number,
  h: AdamWHyper,
): { p: Tensor; m: Tensor; v: Tensor } {
  checkPacked(layout, p, m, v, g);
  const rt = p.rt;
  const n = layout.total;
  const o = { p: rt.keep(rt.empty([n])), m: rt.keep(rt.empty([n])), v: rt.keep(rt.empty([n])) };
  const bind = [p, m, v, g, lr, tensorTable(rt, layout), o.p, o.m, o.v];
  stepPackedSpec.run(rt, bind, packedParams(layout, lrIndex, t, h), n / 4);
  return o;
}

/**
 * Adjoint of `adamwStepPacked` (two dispatches: the element-wise adjoint, then the per-tensor
 * learning-rate sums into `lrBar[lrIndex + j]`). Returns packed p̄, m̄, v̄ of the step's inputs
 * and ḡ, owned by the caller (outside every scope).
 */
export function adamwAdjointPacked(
  p: Tensor,
  m: Tensor,
  v: Tensor,
  g: Tensor,
  lr: Tensor,
  lrIndex: number,
  layout: PackedLayout,
  t: number,
  h: AdamWHyper,
  pBar: Tensor,
  mBar: Tensor,
  vBar: Tensor,
  lrBar: Tensor,
): { p: Tensor; m: Tensor; v: Tensor; g: Tensor } {
  checkPacked(layout, p, m, v, g, pBar, mBar, vBar);
  const rt = p.rt;
  const n = layout.total;
  const groups = cdiv(n, WG);
  const o = {
    p: rt.keep(rt.empty([n])),
    m: rt.keep(rt.empty([n])),
    v: rt.keep(rt.empty([n])),
    g: rt.keep(rt.empty([n])),
  };
  const part = rt.keep(rt.empty([groups]));
  const blk = blockTable(rt, layout);
  const u = packedParams(layout, lrIndex, t, h);
  adjointPackedSpec.run(
    rt,
    [p, m, v, g, lr, tensorTable(rt, layout), pBar, mBar, vBar, o.p, o.m, o.v, o.g, part],
    u,
    n / 4,
  );
  lrReducePackedSpec.run(rt, [part, blk, lrBar], u, layout.count);
  part.dispose();
  return o;
}
