/**
 * Matmul family entry point: C = alpha·op(A)·op(B) (+ bias) (+ C_in), batched.
 *
 * Shapes: A (..., M, K) — or (..., K, M) with transA; B (..., K, N) — or (..., N, K) with
 * transB; B may be 2-D and shared by every batch. Result (..., M, N).
 *
 * This file holds the API, the choice of family by adapter, and a simple correct kernel
 * (one invocation per output) used for shapes the fast families do not take.
 * Families: matmul_subgroup.ts (8-lane subgroup CPU adapters such as lavapipe; operands
 * from storage buffers or staged texels), matmul_tiled.ts (register-blocked shared-memory
 * tiles, real GPUs) with matmul_splitk.ts (long-K thin products). The naive and tiled
 * kernels read sizes from a uniform block (matmul_params.ts): one pipeline per variant.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";
import {
  sgConfigFor,
  sgDispatch,
  sgMatmulSpec,
  sgSupports,
  type Variant,
} from "./matmul_subgroup.ts";
import { tiledPlan, tiledSpec } from "./matmul_tiled.ts";
import { splitKMatmul } from "./matmul_splitk.ts";
import { epilogueWgsl, paramsWgsl, paramsWords } from "./matmul_params.ts";

export interface MatmulOptions {
  readonly transA?: boolean;
  readonly transB?: boolean;
  /** (N) added to every row. */
  readonly bias?: Tensor;
  /** Scale of A·B (bias and accumulate are not scaled). Default 1. */
  readonly alpha?: number;
  /** C_in (same shape as the result) added to the result. May be `out` itself. */
  readonly accumulate?: Tensor;
  /** Write into this tensor instead of a new one. */
  readonly out?: Tensor;
  /**
   * Force a kernel family (tests, benchmarks); default: the best for the adapter. "tiled"
   * runs the discrete-GPU kernels on any adapter, lavapipe included.
   */
  readonly family?: MatmulFamily;
  /**
   * Tiled family only: split K into this many chunks (summed by a second pass; 1: no
   * split). Default: chosen by shape (matmul_tiled.ts `tiledPlan`). For tests and benches.
   */
  readonly splitK?: number;
}

/**
 * naive: one invocation per output (any shape, any adapter); subgroup: the 8-lane kernels
 * reading storage buffers; texture: the same kernels reading A and B as staged texels
 * (lavapipe's default: its storage loads are per-lane loops, texel loads vector gathers);
 * tiled: register-blocked shared-memory tiles for real GPUs, with split-K for long-K thin
 * products (matmul_tiled.ts, matmul_splitk.ts).
 */
export type MatmulFamily = "naive" | "subgroup" | "texture" | "tiled";

export interface MatmulShape {
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batchB: boolean; // B has its own batch (else shared)
  readonly outShape: readonly number[];
}

export function matmulShape(a: Tensor, b: Tensor, o: MatmulOptions = {}): MatmulShape {
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new RangeError(`matmul needs ≥2-D operands, got [${a.shape}] and [${b.shape}]`);
  }
  const ar = a.shape.length, br = b.shape.length;
  const m = o.transA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = o.transA ? a.shape[ar - 2] : a.shape[ar - 1];
  const kb = o.transB ? b.shape[br - 1] : b.shape[br - 2];
  const n = o.transB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== kb) {
    throw new RangeError(
      `matmul inner sizes differ: A [${a.shape}]${o.transA ? "ᵀ" : ""} · B [${b.shape}]${
        o.transB ? "ᵀ" : ""
      }`,
    );
  }
  const lead = a.shape.slice(0, ar - 2);
  const batch = lead.reduce((x, y) => x * y, 1);
  const bBatch = b.shape.slice(0, br - 2).reduce((x, y) => x * y, 1);
  if (bBatch !== 1 && bBatch !== batch) {
    throw new RangeError(`matmul batch sizes differ: A [${a.shape}], B [${b.shape}]`);
  }
  if (o.bias && o.bias.size !== n) {
    throw new RangeError(`matmul bias has ${o.bias.size} elements, expected ${n}`);
  }
  const outShape = [...lead, m, n];
  return { batch, m, n, k, batchB: bBatch !== 1, outShape };
}

const naiveSpecs: (KernelSpec | undefined)[] = [];

/**
 * Simple kernel: one invocation per output element. Correct for any shape and any adapter.
 * Sizes and epilogue come from the uniform block (matmul_params.ts): one pipeline per
 * transpose pair serves every shape.
 */
export function naiveMatmulSpec(o: { transA: boolean; transB: boolean }): KernelSpec {
  const key = (o.transA ? 2 : 0) + (o.transB ? 1 : 0);
  const aIdx = o.transA ? "ab + kk * p.m + row" : "ab + row * p.k + kk";
  const bIdx = o.transB ? "bb + col * p.k + kk" : "bb + kk * p.n + col";
  return naiveSpecs[key] ??= {
    name: "matmul_naive",
    bindings: ["read", "read", "read", "read_write", "uniform"],
    code: /* wgsl */ `
${paramsWgsl(4)}
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> BIAS: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * 64u + lid;
  let mn = p.m * p.n;
  if (i >= p.batch * mn) { return; }
  let bi = i / mn;
  let rc = i % mn;
  let row = rc / p.n;
  let col = rc % p.n;
  let ab = bi * p.strideA;
  let bb = bi * p.strideB;
  var acc = 0.0;
  for (var kk = 0u; kk < p.k; kk++) { acc += A[${aIdx}] * B[${bIdx}]; }
  ${epilogueWgsl("acc", "i", "col")}
}`,
  };
}

/** C = alpha·op(A)·op(B) (+ bias) (+ accumulate). */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const rt = a.rt;
  const s = matmulShape(a, b, o);
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new TypeError(`matmul takes f32 tensors, got ${a.dtype} · ${b.dtype}`);
  }
  const out = o.out ?? rt.empty(s.outShape);
  const ep = { alpha: o.alpha ?? 1, bias: !!o.bias, accumulate: !!o.accumulate };
  if (o.accumulate && o.accumulate !== out) rt.copy(o.accumulate, out);
  const variant: Variant | undefined = o.transA
    ? (o.transB ? undefined : "tn")
    : o.transB
    ? "nt"
    : "nn";
  // K = 0 would bind empty operands as array<vec4f> (under its 16-byte minimum): naive.
  const sgOk = rt.hasSubgroups && rt.subgroupSize === 8 && variant && s.k > 0 &&
    sgSupports(variant, s);
  const texOk = sgOk && rt.texelsFit(a.size) && rt.texelsFit(b.size);
  // CPU adapters: subgroup kernels reading texels (storage reads where the operands do not
  // fit a texture; naive for unaligned shapes, and for fewer than 8 rows: a subgroup lane
  // owns 4 rows, so at M = 1 (decode steps) 31 of a subgroup's 32 rows are idle — measured
  // on lavapipe, naive is 1.5–3× faster at M ≤ 4, slower from M = 8 on); real GPUs: tiled.
  const family = o.family ??
    (sgOk && s.m >= 8
      ? (texOk && rt.isCpuAdapter ? "texture" : "subgroup")
      : rt.isCpuAdapter
      ? "naive"
      : "tiled");
  const t = { transA: !!o.transA, transB: !!o.transB };
  if (
    o.splitK !== undefined && (family !== "tiled" || !(Number.isInteger(o.splitK) && o.splitK >= 1))
  ) {
    throw new RangeError(
      `matmul splitK ${o.splitK}: a positive integer, tiled family only (${family})`,
    );
  }
  if (family === "tiled") {
    const plan = tiledPlan(s, t, o.splitK);
    if (plan.splits > 1) splitKMatmul(rt, s, t, plan, ep, a, b, o.bias ?? a, out);
    else {
      const u = rt.uniform(paramsWords(s, ep));
      rt.dispatch(tiledSpec(plan, t), [a, b, o.bias ?? a, out, u], plan.grid);
    }
    return out;
  }
  if (family === "subgroup" || family === "texture") {
    if (!sgOk || (family === "texture" && !texOk)) {
      throw new RangeError(`${family} matmul cannot run ${variant ?? "tt"} ${JSON.stringify(s)}`);
    }
    const cfg = sgConfigFor(variant!, s);
    const grid = sgDispatch(variant!, s, cfg);
    if (family === "texture") {
      // Stage both operands, then dispatch: the views are bound before any restaging.
      const ta = rt.texels(a, 0), tb = rt.texels(b, 1);
      rt.dispatch(
        sgMatmulSpec(variant!, s, ep, cfg, "texture"),
        [ta, tb, o.bias ?? a, out],
        grid,
      );
    } else {
      rt.dispatch(sgMatmulSpec(variant!, s, ep, cfg), [a, b, o.bias ?? a, out], grid);
    }
    return out;
  }
  rt.dispatch(
    naiveMatmulSpec(t),
    [a, b, o.bias ?? a, out, rt.uniform(paramsWords(s, ep))],
    grid1d(cdiv(s.batch * s.m * s.n, 64)),
  );
  return out;
}

/** Plain TypeScript reference (float64 accumulation), same conventions as `matmul`. */
export function matmulRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  s: { batch: number; m: number; n: number; k: number; batchB: boolean },
  o: {
    transA?: boolean;
    transB?: boolean;
    bias?: ArrayLike<number>;
    alpha?: number;
    accumulate?: ArrayLike<number>;
  } = {},
): Float64Array {
  const { batch, m, n, k } = s;
  const c = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    const ab = bi * m * k, bb = s.batchB ? bi * k * n : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let kk = 0; kk < k; kk++) {
          const av = o.transA ? a[ab + kk * m + i] : a[ab + i * k + kk];
          const bv = o.transB ? b[bb + j * k + kk] : b[bb + kk * n + j];
          acc += av * bv;
        }
        const idx = bi * m * n + i * n + j;
        c[idx] = acc * (o.alpha ?? 1) + (o.bias ? o.bias[j] : 0) +
          (o.accumulate ? o.accumulate[idx] : 0);
      }
    }
  }
  return c;
}

/**
 * matmulRef addressed by shapes, as the autodiff tests state them: C (…, M, N) = op(A)·op(B)
 * with batch over A's leading dims; B is batched when its leading dims are (else shared).
 */
export function matmulShapedRef(
  a: ArrayLike<number>,
  aShape: readonly number[],
  b: ArrayLike<number>,
  bShape: readonly number[],
  { transA = false, transB = false } = {},
): Float64Array {
  const ar = aShape.length, br = bShape.length;
  const m = transA ? aShape[ar - 1] : aShape[ar - 2], k = transA ? aShape[ar - 2] : aShape[ar - 1];
  const n = transB ? bShape[br - 2] : bShape[br - 1];
  const batch = aShape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = bShape.slice(0, -2).reduce((x, y) => x * y, 1) > 1;
  return matmulRef(a, b, { batch, m, n, k, batchB }, { transA, transB });
}
