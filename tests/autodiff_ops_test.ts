/**
 * Every differentiable op: forward vs a float64 reference, JVP and VJP vs central
 * differences, HVP of a scalar loss through the op vs mixed differences (fixed seeds, small
 * odd shapes). The harness is tests/autodiff_harness.ts.
 */
import { checkOp, type OpCase } from "./autodiff_harness.ts";
import { testRuntime } from "./testing.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import * as ad from "../kernels/autodiff/basic.ts";
import * as nn from "../kernels/autodiff/nn.ts";
import { UNARY, type UnaryName } from "../kernels/ops/unary_table.ts";
import { mapRef } from "../kernels/ops/elementwise.ts";
import { reduceRef } from "../kernels/ops/reduce.ts";
import { permuteRef } from "../kernels/ops/strided.ts";
import {
  crossEntropyRef,
  dropoutMaskRef,
  ropeRef,
  ropeTables,
  softmaxRef,
} from "../kernels/ops/nn_kernels.ts";
import { layerNormRef, rmsNormRef } from "../kernels/ops/norm_kernels.ts";
import { matmulShapedRef } from "../kernels/matmul/matmul.ts";
import { attentionComposed64 } from "../kernels/ops/attention/reference.ts";
import { type A, f64 } from "./f64.ts";

const rt = await testRuntime();

/**
 * float64 LoRA linear x·W + b + s·(drop(x)·A)·B for x (M, K), W (K, N), A (K, R), B (R, N);
 * drop is the adapter dropout mask of nn.loraLinear (the frozen product sees x undropped).
 */
function loraLinear64(
  x: A,
  W: A,
  b: A | undefined,
  Am: A,
  Bm: A,
  [M, K, N, R]: number[],
  s: number,
  drop?: { p: number; seed: number },
): A {
  const m = drop && dropoutMaskRef(M * K, drop.p, drop.seed);
  const xd = m ? x.map((v, i) => v * m[i]) : x;
  const base = matmulShapedRef(x, [M, K], W, [K, N]);
  const low = matmulShapedRef(matmulShapedRef(xd, [M, K], Am, [K, R]), [M, R], Bm, [R, N]);
  return b ? base.map((v, i) => v + b[i % N] + s * low[i]) : base.map((v, i) => v + s * low[i]);
}

const bin = (f: (a: number, b: number) => number, sa: number[], sb: number[]) => (a: A, b: A) =>
  mapRef(f, [{ data: a, shape: sa }, { data: b, shape: sb }]).data;

// Constants the cases use (made before the cases run; the test process keeps them).
const idxHost = new Int32Array([2, 0, 5, 2, 2, 1, 3]);
const idx = new nn.RowIndex(rt, idxHost, 6);
const ropeH = ropeTables(5, 8, 10000);
const ropeT = {
  cos: rt.keep(rt.tensor(ropeH.cos, [5, 4])),
  sin: rt.keep(rt.tensor(ropeH.sin, [5, 4])),
};
const segHost = new Int32Array([0, 0, 1, 1, 1, 0, 0, 0, 0, 2]);
const seg = rt.keep(rt.tensor(segHost, [2, 5], "i32"));
const tgtHost = new Int32Array([3, -1, 8, 0, 4]);
const tgt = rt.keep(rt.tensor(tgtHost, [5], "i32"));
// For V = 12: targets at every offset within a vec4 of logits (5 % 4 = 1, 10 % 4 = 2, …).
const tgt12Host = new Int32Array([5, -1, 10, 3, 0]);
const tgt12 = rt.keep(rt.tensor(tgt12Host, [5], "i32"));
/** Σᵢ wᵢ·nllᵢ of (5, V) logits z against targets ids (−1: ignored) and weights w. */
const weightedCeCase = (name: string, V: number, ids: Tensor, idsHost: Int32Array): OpCase => ({
  name,
  shapes: [[5, V], [5]],
  range: (i) => (i ? [0.1, 1] : [-2, 2]),
  gpu: (z, w) => nn.weightedCrossEntropy(z, ids, w),
  ref: (z, w) => {
    const nll = crossEntropyRef(z, V, idsHost);
    return f64([nll.reduce((s, v, i) => s + v * w[i], 0)]);
  },
});

const cases: OpCase[] = [
  { name: "add", shapes: [[3, 5], [5]], gpu: ad.add, ref: bin((a, b) => a + b, [3, 5], [5]) },
  {
    name: "sub",
    shapes: [[2, 1, 3], [4, 1]],
    gpu: ad.sub,
    ref: bin((a, b) => a - b, [2, 1, 3], [4, 1]),
  },
  { name: "mul", shapes: [[3, 5], [3, 1]], gpu: ad.mul, ref: bin((a, b) => a * b, [3, 5], [3, 1]) },
  {
    name: "div",
    shapes: [[7], [7]],
    range: (i) => (i ? [0.5, 2] : [-1, 1]),
    gpu: ad.div,
    ref: bin((a, b) => a / b, [7], [7]),
  },
  {
    name: "scale",
    shapes: [[9]],
    gpu: (x) => ad.scale(x, -1.5, 0.25),
    ref: (x) => x.map((v) => -1.5 * v + 0.25),
  },
  ...(Object.keys(UNARY) as UnaryName[]).map((n): OpCase => ({
    name: n,
    shapes: [[11]],
    range: () => (["log", "sqrt", "rsqrt", "recip"].includes(n) ? [0.5, 2] : [-2, 2]),
    gpu: (x) => ad.unary(n, x, n === "softplus" ? 3 : 1),
    ref: (x) => x.map((v) => UNARY[n].ref(v, n === "softplus" ? 3 : 1)),
  })),
  {
    name: "sum axis 1",
    shapes: [[3, 4, 5]],
    gpu: (x) => ad.sum(x, 1),
    ref: (x) => reduceRef(x, [3, 4, 5], "sum", 1),
  },
  {
    name: "mean axis -1",
    shapes: [[3, 7]],
    gpu: (x) => ad.mean(x, -1),
    ref: (x) => reduceRef(x, [3, 7], "mean", -1),
  },
  {
    name: "max axis 0",
    shapes: [[5, 3]],
    gpu: (x) => ad.max(x, 0),
    ref: (x) => reduceRef(x, [5, 3], "max", 0),
  },
  {
    name: "reshape+transpose",
    shapes: [[6, 5]],
    gpu: (x) => ad.transpose(ad.reshape(x, [3, 2, 5]), 0, 2),
    ref: (x) => permuteRef(x, [3, 2, 5], [2, 1, 0]),
  },
  {
    name: "slice+concat",
    shapes: [[4, 6], [4, 2]],
    gpu: (x, y) => ad.concat([ad.slice(x, 1, 1, 3), y], 1),
    ref: (x, y) => {
      const o = new Float64Array(4 * 5);
      for (let r = 0; r < 4; r++) {
        for (let c = 0; c < 3; c++) o[r * 5 + c] = x[r * 6 + 1 + c];
        for (let c = 0; c < 2; c++) o[r * 5 + 3 + c] = y[r * 2 + c];
      }
      return o;
    },
  },
  ...([[false, false], [true, false], [false, true]] as const).map(([transA, transB]): OpCase => ({
    name: `matmul${transA ? " Aᵀ" : ""}${transB ? " Bᵀ" : ""}`,
    shapes: [transA ? [7, 5] : [5, 7], transB ? [3, 7] : [7, 3]],
    gpu: (a, b) => ad.matmul(a, b, { transA, transB }),
    ref: (a, b) =>
      matmulShapedRef(a, transA ? [7, 5] : [5, 7], b, transB ? [3, 7] : [7, 3], { transA, transB }),
  })),
  ...([[false, false], [true, false], [false, true]] as const).map(([transA, transB]): OpCase => ({
    name: `matmul α = −0.75${transA ? " Aᵀ" : ""}${transB ? " Bᵀ" : ""}`,
    shapes: [transA ? [7, 5] : [5, 7], transB ? [3, 7] : [7, 3]],
    gpu: (a, b) => ad.matmul(a, b, { transA, transB, alpha: -0.75 }),
    ref: (a, b) =>
      matmulShapedRef(a, transA ? [7, 5] : [5, 7], b, transB ? [3, 7] : [7, 3], { transA, transB })
        .map((v) => -0.75 * v),
  })),
  {
    name: "matmul α = 2.5, batched A, shared B, bias (bias not scaled)",
    shapes: [[2, 3, 5], [5, 4], [4]],
    gpu: (a, b, c) => ad.matmul(a, b, { bias: c, alpha: 2.5 }),
    ref: (a, b, c) => matmulShapedRef(a, [2, 3, 5], b, [5, 4]).map((v, i) => 2.5 * v + c[i % 4]),
  },
  {
    name: "matmul α = 0.5 Bᵀ + addend (y + α·x·Wᵀ, the LoRA form)",
    shapes: [[5, 7], [3, 7], [5, 3]],
    gpu: (a, b, c) => ad.matmul(a, b, { transB: true, alpha: 0.5, addend: c }),
    ref: (a, b, c) =>
      matmulShapedRef(a, [5, 7], b, [3, 7], { transB: true }).map((v, i) => 0.5 * v + c[i]),
  },
  {
    name: "matmul + bias + addend, batched A",
    shapes: [[2, 3, 5], [5, 4], [4], [2, 3, 4]],
    gpu: (a, b, c, d) => ad.matmul(a, b, { bias: c, addend: d }),
    ref: (a, b, c, d) =>
      matmulShapedRef(a, [2, 3, 5], b, [5, 4]).map((v, i) => v + c[i % 4] + d[i]),
  },
  {
    name: "matmul batched A, shared B, bias",
    shapes: [[2, 3, 5], [5, 4], [4]],
    gpu: (a, b, c) => ad.matmul(a, b, { bias: c }),
    ref: (a, b, c) => matmulShapedRef(a, [2, 3, 5], b, [5, 4]).map((v, i) => v + c[i % 4]),
  },
  {
    name: "matmul batched both, Bᵀ",
    shapes: [[2, 3, 5], [2, 4, 5]],
    gpu: (a, b) => ad.matmul(a, b, { transB: true }),
    ref: (a, b) => matmulShapedRef(a, [2, 3, 5], b, [2, 4, 5], { transB: true }),
  },
  // Rows of 5 (a float per lane) and of 8 (a vec4 per lane).
  ...[5, 8].map((C) => ({
    name: `gather (embedding), rows of ${C}`,
    shapes: [[6, C]],
    gpu: (w: Tensor) => nn.gather(w, idx),
    ref: (w: Float64Array) => {
      const o = new Float64Array(idxHost.length * C);
      idxHost.forEach((r, i) => o.set(w.subarray(r * C, r * C + C), i * C));
      return o;
    },
  })),
  {
    name: "scatter-add",
    shapes: [[idxHost.length, 5]],
    gpu: (s) => nn.scatterAdd(s, idx),
    ref: (s) => {
      const o = new Float64Array(6 * 5);
      idxHost.forEach((r, i) => {
        for (let c = 0; c < 5; c++) o[r * 5 + c] += s[i * 5 + c];
      });
      return o;
    },
  },
  {
    name: "softmax",
    shapes: [[3, 7]],
    range: () => [-2, 2],
    gpu: (x) => nn.softmax(x),
    ref: (x) => softmaxRef(x, 7),
  },
  {
    name: "softmax causal (B,H,T,S)",
    shapes: [[2, 2, 3, 5]],
    gpu: (x) => nn.softmax(x, { heads: 2, causal: true }),
    ref: (x) => softmaxRef(x, 5, (r, s) => s <= (r % 3) + 2),
  },
  {
    name: "layerNorm",
    shapes: [[4, 7], [7], [7]],
    gpu: (x, w, b) => nn.layerNorm(x, w, b, 1e-5),
    ref: (x, w, b) => layerNormRef(x, 7, w, b, 1e-5),
  },
  {
    name: "rmsNorm",
    shapes: [[4, 6], [6]],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-6),
    ref: (x, w) => rmsNormRef(x, 6, w, 1e-6),
  },
  // The fused RMSNorm on odd shapes: rows not a multiple of anything, a row wider than the
  // kernel's 64 lanes (each lane strides it), a 3-D input, a one-element row.
  {
    name: "rmsNorm fused (5, 7)",
    shapes: [[5, 7], [7]],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-5),
    ref: (x, w) => rmsNormRef(x, 7, w, 1e-5),
  },
  {
    name: "rmsNorm fused (3, 131), row wider than a workgroup",
    shapes: [[3, 131], [131]],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-5),
    ref: (x, w) => rmsNormRef(x, 131, w, 1e-5),
  },
  {
    name: "rmsNorm fused (2, 3, 9)",
    shapes: [[2, 3, 9], [9]],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-6),
    ref: (x, w) => rmsNormRef(x, 9, w, 1e-6),
  },
  {
    name: "rmsNorm fused (3, 12), rows of vec4s",
    shapes: [[3, 12], [12]],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-5),
    ref: (x, w) => rmsNormRef(x, 12, w, 1e-5),
  },
  {
    name: "rmsNorm fused (3, 1)",
    shapes: [[3, 1], [1]],
    range: () => [0.5, 1.5],
    gpu: (x, w) => nn.rmsNorm(x, w, 1e-2),
    ref: (x, w) => rmsNormRef(x, 1, w, 1e-2),
  },
  {
    name: "rope",
    shapes: [[2, 5, 8]],
    gpu: (x) => nn.rope(x, ropeT.cos, ropeT.sin),
    ref: (x) => ropeRef(x, 5, 8, ropeH.cos, ropeH.sin),
  },
  {
    name: "attention GQA causal + segments",
    shapes: [[2, 4, 5, 3], [2, 2, 5, 3], [2, 2, 5, 3]],
    gpu: (q, k, v) => nn.attention(q, k, v, { causal: true, segIds: seg }),
    ref: (q, k, v) => attentionComposed64(q, k, v, [2, 4, 5, 3], 2, 5, true, segHost),
  },
  {
    name: "LoRA linear with dropout",
    shapes: [[5, 6], [6, 4], [4], [6, 2], [2, 4]],
    gpu: (x, W, b, A, B) =>
      nn.loraLinear(x, W, b, { A, B, scale: 2, dropout: { p: 0.3, seed: 7 } }),
    ref: (x, W, b, A, B) => loraLinear64(x, W, b, A, B, [5, 6, 4, 2], 2, { p: 0.3, seed: 7 }),
  },
  // The fused LoRA linear's texel family (in, r multiples of 4 on CPU adapters; the plain
  // family elsewhere), with and without dropout, rows over a workgroup.
  {
    name: "LoRA linear, in = 8, r = 4, dropout (texel family)",
    shapes: [[9, 8], [8, 12], [12], [8, 4], [4, 12]],
    gpu: (x, W, b, A, B) =>
      nn.loraLinear(x, W, b, { A, B, scale: 1.5, dropout: { p: 0.25, seed: 11 } }),
    ref: (x, W, b, A, B) => loraLinear64(x, W, b, A, B, [9, 8, 12, 4], 1.5, { p: 0.25, seed: 11 }),
  },
  {
    name: "LoRA linear, 70 rows, in = 12, r = 8, no dropout, no bias",
    shapes: [[70, 12], [12, 5], [12, 8], [8, 5]],
    gpu: (x, W, A, B) => nn.loraLinear(x, W, undefined, { A, B, scale: 0.5 }),
    ref: (x, W, A, B) => loraLinear64(x, W, undefined, A, B, [70, 12, 5, 8], 0.5),
  },
  weightedCeCase("weighted cross-entropy (ignore mask)", 9, tgt, tgtHost),
  // V % 4 = 0: on CPU adapters the logits are read as staged texels (4 per load).
  weightedCeCase("weighted cross-entropy, V = 12 (texel kernels)", 12, tgt12, tgt12Host),
  {
    name: "dropout",
    shapes: [[40]],
    gpu: (x) => nn.dropout(x, 0.25, 3),
    ref: (x) => {
      const m = dropoutMaskRef(40, 0.25, 3);
      return x.map((v, i) => v * m[i]);
    },
  },
];

for (const [i, c] of cases.entries()) {
  Deno.test(`autodiff ${c.name}: forward, JVP, VJP, HVP`, () => checkOp(rt, c, i + 1));
}
