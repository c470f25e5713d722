/**
 * Cross-entropy's per-row kernels with ONE WORKGROUP PER ROW, for discrete GPUs: the lanes of
 * a workgroup stride over the vocabulary, then a workgroup-wide tree reduction (max, then the
 * sum of exponentials) gives the row's log-sum-exp. The one-lane-per-row kernels in
 * nn_kernels.ts suit CPU adapters (lanes are SIMD lanes there, and loops are cheap), but on a
 * GPU a (rows, vocabulary) pass with few rows leaves most of the machine idle and each lane
 * walks a whole row.
 *
 * The summation order differs from the lane kernels' (strided partial sums, then a tree), so
 * results agree to rounding, not bit for bit; nn_kernels.ts picks these kernels only on
 * adapters that are not CPU adapters unless asked explicitly (`CeOptions.rows`).
 *
 * Kernels (Z: logits (N, V); TGT: i32 targets (N), −1 = ignored):
 *   ce_rows_wg   → NLL (N), LSE (N)          NLL = lse − z_t (0 when ignored)
 *   ce_pdot_wg   → OUT (N) = Σ_v p_v·ż_v (the tangent of lse); with nllMode, minus ż_t
 */
import type { Tensor } from "../runtime/tensor.ts";
import { grid1d, kernel, LANE_ARGS } from "../runtime/kernel.ts";

/** Lanes per row. */
const WG = 256;

/** Workgroup tree reduction of `red` with `op` (each lane has stored its partial). */
const reduce = (op: (a: string, b: string) => string) => /* wgsl */ `
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = ${op("red[lid]", "red[lid + s]")}; }
    workgroupBarrier();
  }`;

// The row index is the workgroup's: the early return is uniform over the workgroup, so every
// barrier is still reached by all of its lanes.
const ROW = /* wgsl */ `
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.N) { return; }
  let base = row * u.V;`;

const CE_ROWS_WG = kernel({
  name: "ce_rows_wg",
  inputs: { Z: "f32", TGT: "i32" },
  outputs: { NLL: "f32", LSE: "f32" },
  uniforms: { N: "u32", V: "u32" },
  decls: `var<workgroup> red: array<f32, ${WG}>;`,
  body: /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(${LANE_ARGS}) {${ROW}
  var m: f32 = -3.4028235e38;
  for (var v = lid; v < u.V; v += ${WG}u) { m = max(m, Z[base + v]); }
  red[lid] = m;${reduce((a, b) => `max(${a}, ${b})`)}
  let mx = red[0];
  workgroupBarrier();
  var s: f32 = 0.0;
  for (var v = lid; v < u.V; v += ${WG}u) { s += exp(Z[base + v] - mx); }
  red[lid] = s;${reduce((a, b) => `${a} + ${b}`)}
  if (lid == 0u) {
    let lse = mx + log(red[0]);
    LSE[row] = lse;
    let t = TGT[row];
    NLL[row] = select(0.0, lse - Z[base + u32(max(t, 0))], t >= 0);
  }
}`,
});

const CE_PDOT_WG = kernel({
  name: "ce_pdot_wg",
  inputs: { Z: "f32", TGT: "i32", LSE: "f32", DZ: "f32" },
  outputs: { OUT: "f32" },
  uniforms: { N: "u32", V: "u32", nllMode: "u32" },
  decls: `var<workgroup> red: array<f32, ${WG}>;`,
  body: /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(${LANE_ARGS}) {${ROW}
  let lse = LSE[row];
  var s: f32 = 0.0;
  for (var v = lid; v < u.V; v += ${WG}u) { s += exp(Z[base + v] - lse) * DZ[base + v]; }
  red[lid] = s;${reduce((a, b) => `${a} + ${b}`)}
  if (lid == 0u) {
    let p = red[0];
    let t = TGT[row];
    OUT[row] = select(p, select(0.0, p - DZ[base + u32(max(t, 0))], t >= 0), u.nllMode != 0u);
  }
}`,
});

/** Per-row NLL and log-sum-exp of logits z (N, V), one workgroup per row. */
export function crossEntropyRowsWg(
  z: Tensor,
  targets: Tensor,
  nll: Tensor,
  lse: Tensor,
  N: number,
  V: number,
): void {
  CE_ROWS_WG.run(z.rt, [z, targets, nll, lse], { N, V }, grid1d(N));
}

/** Σ_v softmax(z)_v · ż_v per row (minus ż at the target with `nll`), one workgroup per row. */
export function crossEntropyPDotWg(
  z: Tensor,
  targets: Tensor,
  lse: Tensor,
  dz: Tensor,
  out: Tensor,
  N: number,
  V: number,
  nll: boolean,
): void {
  CE_PDOT_WG.run(z.rt, [z, targets, lse, dz, out], { N, V, nllMode: nll ? 1 : 0 }, grid1d(N));
}

/** float64 reference of both row families: softmax rows p and log-sum-exps lse of z (N, V). */
export function softmaxLseRef(z: ArrayLike<number>, N: number, V: number) {
  const p = new Float64Array(N * V), lse = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    let m = -Infinity;
    for (let v = 0; v < V; v++) m = Math.max(m, z[r * V + v]);
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(z[r * V + v] - m);
    lse[r] = m + Math.log(s);
    for (let v = 0; v < V; v++) p[r * V + v] = Math.exp(z[r * V + v] - lse[r]);
  }
  return { p, lse };
}
