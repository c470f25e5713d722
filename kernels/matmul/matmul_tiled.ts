/**
 * Shared-memory tiled matmul for real GPUs: a workgroup of 16×16 invocations computes a
 * 64×64 tile of C, each invocation a 4×4 block, staging 64×16 slices of A and B through
 * workgroup memory. Any shape, any transpose (loads are bounds-checked into the tiles);
 * batched over workgroup z; epilogue C = alpha·acc (+ bias) (+ C). On lavapipe it runs
 * (tests force it there) but the subgroup family is faster.
 */
import type { KernelSpec } from "../runtime/kernel.ts";
import type { MatmulShape } from "./matmul.ts";
import type { Epilogue } from "./matmul_subgroup.ts";

const TM = 64, TN = 64, TK = 16;

export function tiledDispatch(s: MatmulShape): [number, number, number] {
  return [Math.ceil(s.n / TN), Math.ceil(s.m / TM), s.batch];
}

export function tiledMatmulSpec(
  s: MatmulShape,
  o: { transA: boolean; transB: boolean },
  ep: Epilogue,
): KernelSpec {
  const { m, n, k } = s;
  const aAt = o.transA ? `abase + kk * ${m}u + row` : `abase + row * ${k}u + kk`;
  const bAt = o.transB ? `bbase + col * ${k}u + kk` : `bbase + kk * ${n}u + col`;
  let e = `acc[i][j] * ${Number.isInteger(ep.alpha) ? `${ep.alpha}.0` : ep.alpha.toExponential()}`;
  if (ep.bias) e += " + BIAS[col]";
  if (ep.accumulate) e += " + C[idx]";
  const code = /* wgsl */ `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> BIAS: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f32, ${TM * TK}>;  // (TM, TK)
var<workgroup> Bs: array<f32, ${TK * TN}>;  // (TK, TN)
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let bz = wg.z;
  let abase = bz * ${m * k}u;
  let bbase = ${s.batchB ? `bz * ${k * n}u` : "0u"};
  let r0 = wg.y * ${TM}u;
  let c0 = wg.x * ${TN}u;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < ${k}u; k0 += ${TK}u) {
    // 256 invocations load 64×16 = 1024 values of each operand: 4 each.
    for (var q = 0u; q < 4u; q++) {
      let e = t + q * 256u;
      let ar = e / ${TK}u; let ak = e % ${TK}u;
      let row = r0 + ar; let kk = k0 + ak;
      var av = 0.0;
      if (row < ${m}u && kk < ${k}u) { av = A[${aAt}]; }
      As[ar * ${TK}u + ak] = av;
      let bk = e / ${TN}u; let bc = e % ${TN}u;
      let col = c0 + bc; let kb = k0 + bk;
      var bv = 0.0;
      if (col < ${n}u && kb < ${k}u) { let kk = kb; bv = B[${bAt}]; }
      Bs[bk * ${TN}u + bc] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = As[(lid.y * 4u + i) * ${TK}u + kk]; }
      for (var j = 0u; j < 4u; j++) { b[j] = Bs[kk * ${TN}u + lid.x * 4u + j]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(a[i], b[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = r0 + lid.y * 4u + i;
    if (row >= ${m}u) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let col = c0 + lid.x * 4u + j;
      if (col >= ${n}u) { continue; }
      let idx = bz * ${m * n}u + row * ${n}u + col;
      C[idx] = ${e};
    }
  }
}`;
  return { name: "matmul_tiled", code, bindings: ["read", "read", "read", "read_write"] };
}
