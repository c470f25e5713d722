/**
 * In-place accumulation `dst += alpha · src` (same size, f32). Used where gradients are
 * summed into an existing buffer: gradient accumulation over segment groups, and the
 * meta-gradient sweep adding Hessian-vector products to adjoints. (The differentiable
 * `add` op makes a new tensor and records derivatives; this does neither.)
 */
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";

const WG = 64;

const spec: KernelSpec = {
  name: "accumulate",
  bindings: ["read", "read_write", "uniform"],
  code: /* wgsl */ `
struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> D: array<f32>;
@group(0) @binding(2) var<uniform> u: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i < u.n) { D[i] += u.alpha * S[i]; }
}`,
};

/** dst += alpha · src, in place; returns dst. */
export function accumulateInto(dst: Tensor, src: Tensor, alpha = 1): Tensor {
  if (dst.size !== src.size || dst.dtype !== "f32" || src.dtype !== "f32") {
    throw new RangeError(`accumulateInto: ${dst} += ${src} needs two f32 tensors of one size`);
  }
  const buf = new ArrayBuffer(8);
  new Uint32Array(buf)[0] = dst.size;
  new Float32Array(buf)[1] = alpha;
  const rt = dst.rt;
  rt.dispatch(spec, [src, dst, rt.uniform(new Uint32Array(buf))], grid1d(cdiv(dst.size, WG)));
  return dst;
}
