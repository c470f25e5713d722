/**
 * Split-K for long-K thin products (the LoRA weight gradient xᵀ·g: K = tokens, in the
 * thousands; M×N like 128×16): without a split such a product is a handful of workgroups
 * each walking all of K while the GPU idles. The tiled kernel (matmul_tiled.ts) runs with
 * z = batch·splits, each split summing its K chunk into a workspace (batch, splits, M, N);
 * this pass adds the splits in order and applies the epilogue. Two passes, no atomics, so
 * results are deterministic.
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";
import type { MatmulShape } from "./matmul.ts";
import { type Epilogue, paramsWgsl, paramsWords } from "./matmul_params.ts";
import { type TiledPlan, tiledSpec } from "./matmul_tiled.ts";

const WG = 64;

/** (batch, splits, M, N) partial sums → C (batch, M, N) with the epilogue. */
const REDUCE: KernelSpec = {
  name: "matmul_splitk_reduce",
  bindings: ["read", "read", "read_write", "uniform"],
  code: /* wgsl */ `
${paramsWgsl(3)}
@group(0) @binding(0) var<storage, read> PART: array<f32>;
@group(0) @binding(1) var<storage, read> BIAS: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  let mn = p.m * p.n;
  if (i >= p.batch * mn) { return; }
  let bz = i / mn;
  let rc = i % mn;
  var acc = 0.0;
  for (var s = 0u; s < p.splits; s++) { acc += PART[(bz * p.splits + s) * mn + rc]; }
  var e = acc * p.alpha;
  if ((p.flags & 1u) != 0u) { e += BIAS[rc % p.n]; }
  if ((p.flags & 2u) != 0u) { e += C[i]; }
  C[i] = e;
}`,
};

/** Record the split product: partial sums into a pooled workspace, then the reduction. */
export function splitKMatmul(
  rt: Runtime,
  s: MatmulShape,
  t: { transA: boolean; transB: boolean },
  plan: TiledPlan,
  ep: Epilogue,
  a: Tensor,
  b: Tensor,
  bias: Tensor,
  out: Tensor,
): void {
  const part = rt.empty([s.batch * plan.splits * s.m * s.n]);
  const raw = paramsWords(s, { alpha: 1, bias: false, accumulate: false }, plan);
  rt.dispatch(tiledSpec(plan, t), [a, b, bias, part, rt.uniform(raw)], plan.grid);
  const words = paramsWords(s, ep, plan);
  rt.dispatch(REDUCE, [part, bias, out, rt.uniform(words)], grid1d(cdiv(s.batch * s.m * s.n, WG)));
  // The pool may hand the buffer out again: later work is recorded after these dispatches.
  part.dispose();
}
