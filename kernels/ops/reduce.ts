/**
 * Reductions along one axis: sum, mean, max. The tensor is viewed as (outer, n, inner) and
 * reduced to (outer, inner) (the axis is kept as size 1 with `keepDims`). One lane per
 * output loops over n — lanes are SIMD lanes on lavapipe, and loops are cheap there; when
 * there are too few outputs to fill the machine and n is long, a first pass reduces
 * chunks of n and a second pass reduces the partials.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, type Kernel, kernel } from "../runtime/kernel.ts";
import { normAxis } from "./shape.ts";

export type ReduceOp = "sum" | "mean" | "max";
const WG = 64;
const REDUCE_U = {
  outer: "u32",
  n: "u32",
  inner: "u32",
  chunk: "u32",
  chunks: "u32",
  scale: "f32",
} as const;
const specs = new Map<ReduceOp, Kernel<typeof REDUCE_U>>();

function reduceKernel(op: ReduceOp): Kernel<typeof REDUCE_U> {
  const hit = specs.get(op);
  if (hit) return hit;
  const init = op === "max" ? "-3.4028235e38" : "0.0";
  const comb = op === "max" ? "acc = max(acc, v);" : "acc += v;";
  // Output (outer, chunks, inner); chunk c covers n-range [c·chunk, min(n, (c+1)·chunk)).
  const k = kernel({
    name: `reduce_${op}`,
    inputs: { X: "f32" },
    outputs: { Y: "f32" },
    uniforms: REDUCE_U,
    wg: WG,
    lanes: "u.outer * u.chunks * u.inner",
    body: /* wgsl */ `
  let j = id % u.inner;
  let c = (id / u.inner) % u.chunks;
  let o = id / (u.inner * u.chunks);
  let start = c * u.chunk;
  let stop = min(u.n, start + u.chunk);
  var acc: f32 = ${init};
  var p = (o * u.n + start) * u.inner + j;
  for (var k = start; k < stop; k++) {
    let v = X[p];
    ${comb}
    p += u.inner;
  }
  Y[id] = ${op === "max" ? "acc" : "acc * u.scale"};`,
  });
  specs.set(op, k);
  return k;
}

function dispatchReduce(
  op: ReduceOp,
  x: Tensor,
  y: Tensor,
  outer: number,
  n: number,
  inner: number,
  chunk: number,
  scale: number,
): void {
  const chunks = cdiv(n, chunk);
  const values = { outer, n, inner, chunk, chunks, scale };
  reduceKernel(op).run(x.rt, [x, y], values, outer * chunks * inner);
}

/** Reduce `x` along `axis`. Shape: x's shape without the axis (or with 1 there: keepDims). */
export function reduce(x: Tensor, op: ReduceOp, axis = -1, keepDims = false): Tensor {
  const ax = normAxis(axis, x.shape.length);
  const n = x.shape[ax];
  const outer = x.shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outShape = keepDims
    ? x.shape.map((d, i) => (i === ax ? 1 : d))
    : x.shape.filter((_, i) => i !== ax);
  const rt = x.rt;
  const y = rt.empty(outShape);
  if (n === 0) throw new RangeError(`reduce ${op}: axis ${axis} of ${x} is empty`);
  const scale = op === "mean" ? 1 / n : 1;
  // Split long reductions when the outputs alone cannot fill ~4K lanes.
  const lanesWanted = 4096;
  const chunk = outer * inner >= lanesWanted || n <= 256
    ? n
    : Math.max(64, cdiv(n, cdiv(lanesWanted, outer * inner)));
  if (chunk >= n) {
    dispatchReduce(op, x, y, outer, n, inner, n, scale);
    return y;
  }
  const chunks = cdiv(n, chunk);
  const partial = rt.empty([outer, chunks, inner]);
  dispatchReduce(op, x, partial, outer, n, inner, chunk, 1);
  dispatchReduce(op === "max" ? "max" : "sum", partial, y, outer, chunks, inner, chunks, scale);
  partial.dispose();
  return y;
}

export const sum = (x: Tensor, axis = -1, keepDims = false) => reduce(x, "sum", axis, keepDims);
export const mean = (x: Tensor, axis = -1, keepDims = false) => reduce(x, "mean", axis, keepDims);
export const max = (x: Tensor, axis = -1, keepDims = false) => reduce(x, "max", axis, keepDims);

/** Plain reference (float64). */
export function reduceRef(
  data: ArrayLike<number>,
  shape: readonly number[],
  op: ReduceOp,
  axis = -1,
): Float64Array {
  const ax = normAxis(axis, shape.length);
  const n = shape[ax];
  const outer = shape.slice(0, ax).reduce((a, b) => a * b, 1);
  const inner = shape.slice(ax + 1).reduce((a, b) => a * b, 1);
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      let acc = op === "max" ? -Infinity : 0;
      for (let k = 0; k < n; k++) {
        const v = data[(o * n + k) * inner + j];
        acc = op === "max" ? Math.max(acc, v) : acc + v;
      }
      out[o * inner + j] = op === "mean" ? acc / n : acc;
    }
  }
  return out;
}
