/**
 * AdamW step and its adjoint as WGSL kernels: one dispatch per parameter tensor
 * (`adamwStep`, `adamwAdjoint`), or one per packed parameter set (`adamwStepPacked`,
 * `adamwAdjointPacked`: every tensor of a packed.ts layout in one buffer, each with its own
 * learning rate). Both run the same per-element math (STEP / ADJOINT below).
 * Reference: adamw_math.ts beside it (float64). The learning rate is read from a GPU
 * tensor of learned rates (`lr[lrIndex]`), so meta-learned rates never leave the GPU and
 * one pipeline serves every tensor, step and size (sizes travel in a uniform).
 */
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";
import type { AdamWHyper } from "./adamw_math.ts";
import { biasCorrections } from "./adamw_math.ts";
import { blockTable, type PackedLayout, tensorTable } from "./packed.ts";

const WG = 64;

const PARAMS = /* wgsl */ `
struct Params { n: u32, lr_index: u32, c1: f32, c2: f32, b1: f32, b2: f32, eps: f32, wd: f32 }`;

const INDEX = /* wgsl */ `
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;`;

/** One element's step (needs i, lr): p, m, v, g → p', m', v'. */
const STEP = /* wgsl */ `
  let g = G[i];
  let m = u.b1 * M[i] + (1.0 - u.b1) * g;
  let v = u.b2 * V[i] + (1.0 - u.b2) * g * g;
  let upd = u.c1 * m / (u.c2 * sqrt(v) + u.eps);
  P2[i] = P[i] * (1.0 - lr * u.wd) - lr * upd;
  M2[i] = m;
  V2[i] = v;`;

/** One element's adjoint (needs i, lr; sets lr_part): p̄', m̄', v̄', ḡ. */
const ADJOINT = /* wgsl */ `
    let g = G[i];
    let m = u.b1 * M[i] + (1.0 - u.b1) * g;
    let v = u.b2 * V[i] + (1.0 - u.b2) * g * g;
    let sv = sqrt(v);
    let den = u.c2 * sv + u.eps;
    let upd = u.c1 * m / den;
    let pb = PB[i];
    lr_part = pb * (-P[i] * u.wd - upd);
    PB2[i] = pb * (1.0 - lr * u.wd);
    let ub = -lr * pb;
    let mt = MB[i] + ub * u.c1 / den;
    // v = 0 only when every gradient so far was 0: the v-path term vanishes in the limit.
    var vt = VB[i];
    if (sv > 0.0) { vt += ub * (-u.c1 * m * u.c2) / (den * den * 2.0 * sv); }
    MB2[i] = u.b1 * mt;
    VB2[i] = u.b2 * vt;
    GB[i] = (1.0 - u.b1) * mt + 2.0 * (1.0 - u.b2) * g * vt;`;

/** The workgroup's sum of lr_part into PART[workgroup] (the adjoint's epilogue). */
const PARTIAL_SUM = /* wgsl */ `
  red[lid] = lr_part;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { PART[wid.x + wid.y * nwg.x] = red[0]; }`;

/** p, m, v, g, lr → p', m', v' */
const stepSpec: KernelSpec = {
  name: "adamw_step",
  bindings: [
    "read",
    "read",
    "read",
    "read",
    "read",
    "read_write",
    "read_write",
    "read_write",
    "uniform",
  ],
  code: /* wgsl */ `${PARAMS}
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read> M: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> LR: array<f32>;
@group(0) @binding(5) var<storage, read_write> P2: array<f32>;
@group(0) @binding(6) var<storage, read_write> M2: array<f32>;
@group(0) @binding(7) var<storage, read_write> V2: array<f32>;
@group(0) @binding(8) var<uniform> u: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {${INDEX}
  if (i >= u.n) { return; }
  let lr = LR[u.lr_index];${STEP}
}`,
};

/**
 * Adjoint: p, m, v, g, lr, p̄, m̄, v̄ → p̄', m̄', v̄', ḡ and per-workgroup partial sums of the
 * learning-rate adjoint (reduced by `lrReduceSpec`).
 */
const adjointSpec: KernelSpec = {
  name: "adamw_adjoint",
  bindings: [
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read_write",
    "read_write",
    "read_write",
    "read_write",
    "read_write",
    "uniform",
  ],
  code: /* wgsl */ `${PARAMS}
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read> M: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> LR: array<f32>;
@group(0) @binding(5) var<storage, read> PB: array<f32>;
@group(0) @binding(6) var<storage, read> MB: array<f32>;
@group(0) @binding(7) var<storage, read> VB: array<f32>;
@group(0) @binding(8) var<storage, read_write> PB2: array<f32>;
@group(0) @binding(9) var<storage, read_write> MB2: array<f32>;
@group(0) @binding(10) var<storage, read_write> VB2: array<f32>;
@group(0) @binding(11) var<storage, read_write> GB: array<f32>;
@group(0) @binding(12) var<storage, read_write> PART: array<f32>;
@group(0) @binding(13) var<uniform> u: Params;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {${INDEX}
  var lr_part = 0.0;
  if (i < u.n) {
    let lr = LR[u.lr_index];${ADJOINT}
  }${PARTIAL_SUM}
}`,
};

/** LRB[lr_index] += Σ PART[0..n) (one invocation; partial counts are small). */
const lrReduceSpec: KernelSpec = {
  name: "adamw_lr_reduce",
  bindings: ["read", "read_write", "uniform"],
  code: /* wgsl */ `${PARAMS}
@group(0) @binding(0) var<storage, read> PART: array<f32>;
@group(0) @binding(1) var<storage, read_write> LRB: array<f32>;
@group(0) @binding(2) var<uniform> u: Params;
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var k = 0u; k < u.n; k++) { s += PART[k]; }
  LRB[u.lr_index] += s;
}`,
};

function params(
  rt: Tensor["rt"],
  n: number,
  lrIndex: number,
  t: number,
  h: AdamWHyper,
  count = 0,
) {
  const { c1, c2 } = biasCorrections(h, t);
  const buf = new ArrayBuffer(count ? 36 : 32);
  const u = new Uint32Array(buf), f = new Float32Array(buf);
  u[0] = n;
  u[1] = lrIndex;
  f[2] = c1;
  f[3] = c2;
  f[4] = h.beta1;
  f[5] = h.beta2;
  f[6] = h.eps;
  f[7] = h.weightDecay;
  if (count) u[8] = count; // packed kernels: tensors in the set
  return rt.uniform(u);
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
  rt.dispatch(
    stepSpec,
    [p, m, v, g, lr, o.p, o.m, o.v, params(rt, n, lrIndex, t, h)],
    grid1d(cdiv(n, WG)),
  );
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
  rt.dispatch(
    adjointSpec,
    [p, m, v, g, lr, pBar, mBar, vBar, o.p, o.m, o.v, o.g, part, params(rt, n, lrIndex, t, h)],
    grid1d(groups),
  );
  rt.dispatch(lrReduceSpec, [part, lrBar, params(rt, groups, lrIndex, t, h)], [1]);
  part.dispose();
  return o;
}

// ------------------------------------------------------------------ packed parameter sets

const PACKED_PARAMS = /* wgsl */ `
struct Params {
  n: u32, lr_index: u32, c1: f32, c2: f32, b1: f32, b2: f32, eps: f32, wd: f32, count: u32,
}`;

/**
 * Packed p, m, v, g, lr, tensor table (TID: each workgroup's tensor, packed.ts) → p', m', v';
 * tensor j steps with LR[lr_index + j].
 */
const stepPackedSpec: KernelSpec = {
  name: "adamw_step_packed",
  bindings: [
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read_write",
    "read_write",
    "read_write",
    "uniform",
  ],
  code: /* wgsl */ `${PACKED_PARAMS}
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read> M: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> LR: array<f32>;
@group(0) @binding(5) var<storage, read> TID: array<u32>;
@group(0) @binding(6) var<storage, read_write> P2: array<f32>;
@group(0) @binding(7) var<storage, read_write> M2: array<f32>;
@group(0) @binding(8) var<storage, read_write> V2: array<f32>;
@group(0) @binding(9) var<uniform> u: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {${INDEX}
  if (i >= u.n) { return; }
  let lr = LR[u.lr_index + TID[wid.x + wid.y * nwg.x]];${STEP}
}`,
};

/** The adjoint over a packed set: as `adjointSpec`, each workgroup inside one tensor (TID). */
const adjointPackedSpec: KernelSpec = {
  name: "adamw_adjoint_packed",
  bindings: [
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read",
    "read_write",
    "read_write",
    "read_write",
    "read_write",
    "read_write",
    "uniform",
  ],
  code: /* wgsl */ `${PACKED_PARAMS}
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read> M: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read> LR: array<f32>;
@group(0) @binding(5) var<storage, read> TID: array<u32>;
@group(0) @binding(6) var<storage, read> PB: array<f32>;
@group(0) @binding(7) var<storage, read> MB: array<f32>;
@group(0) @binding(8) var<storage, read> VB: array<f32>;
@group(0) @binding(9) var<storage, read_write> PB2: array<f32>;
@group(0) @binding(10) var<storage, read_write> MB2: array<f32>;
@group(0) @binding(11) var<storage, read_write> VB2: array<f32>;
@group(0) @binding(12) var<storage, read_write> GB: array<f32>;
@group(0) @binding(13) var<storage, read_write> PART: array<f32>;
@group(0) @binding(14) var<uniform> u: Params;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {${INDEX}
  var lr_part = 0.0;
  if (i < u.n) {
    let lr = LR[u.lr_index + TID[wid.x + wid.y * nwg.x]];${ADJOINT}
  }${PARTIAL_SUM}
}`,
};

/**
 * LRB[lr_index + j] += Σ PART over tensor j's workgroups, one lane per tensor (each sums its
 * partials in order, as `lrReduceSpec` does for one tensor).
 */
const lrReducePackedSpec: KernelSpec = {
  name: "adamw_lr_reduce_packed",
  bindings: ["read", "read", "read_write", "uniform"],
  code: /* wgsl */ `${PACKED_PARAMS}
@group(0) @binding(0) var<storage, read> PART: array<f32>;
@group(0) @binding(1) var<storage, read> BLK: array<u32>;
@group(0) @binding(2) var<storage, read_write> LRB: array<f32>;
@group(0) @binding(3) var<uniform> u: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {${INDEX}
  if (i >= u.count) { return; }
  var s = 0.0;
  for (var k = BLK[i]; k < BLK[i + 1u]; k++) { s += PART[k]; }
  LRB[u.lr_index + i] += s;
}`,
};

const packedParams = (
  rt: Tensor["rt"],
  layout: PackedLayout,
  lrIndex: number,
  t: number,
  h: AdamWHyper,
) => params(rt, layout.total, lrIndex, t, h, layout.count);

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
  rt.dispatch(
    stepPackedSpec,
    [
      p,
      m,
      v,
      g,
      lr,
      tensorTable(rt, layout),
      o.p,
      o.m,
      o.v,
      packedParams(rt, layout, lrIndex, t, h),
    ],
    grid1d(cdiv(n, WG)),
  );
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
  const u = packedParams(rt, layout, lrIndex, t, h);
  rt.dispatch(
    adjointPackedSpec,
    [p, m, v, g, lr, tensorTable(rt, layout), pBar, mBar, vBar, o.p, o.m, o.v, o.g, part, u],
    grid1d(groups),
  );
  rt.dispatch(lrReducePackedSpec, [part, blk, lrBar, u], grid1d(cdiv(layout.count, WG)));
  part.dispose();
  return o;
}
