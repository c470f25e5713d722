/**
 * Data movement as one strided-copy kernel: dst[dOff + Σ i_d·dStride_d] (+)= src[sOff +
 * Σ i_d·sStride_d] over an index space `shape`. Transpose/permute, slice, concat, broadcast
 * (expand) and their gradients (scatter into a slice) are all this kernel with different
 * strides — one pipeline per rank, sizes and strides in a uniform.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { type Kernel, kernel } from "../runtime/kernel.ts";
import { texelLoadFn, texelLoadScalarFn } from "../runtime/texels.ts";
import { broadcastStrides, checkRank, normAxis, stridesOf } from "./shape.ts";

const WG = 256;

/**
 * One pipeline per (rank, accumulate, texels). The dimension loop is unrolled with
 * constant indices into the uniform (a dynamic index into it is a per-lane gather on
 * lavapipe); with `texels` the source is read as staged texels (texels.ts).
 */
const COPY_U = {
  n: "u32",
  rank: "u32",
  soff: "u32",
  doff: "u32",
  shape: "array<vec4u, 2>",
  ss: "array<vec4u, 2>",
  ds: "array<vec4u, 2>",
} as const;

/**
 * `vec4`: each lane moves 4 consecutive floats (the index space's last axis, contiguous on
 * both sides; sizes, strides and offsets in vec4 units) — a quarter of the lanes, and one texel
 * or vec4 load per lane instead of four scalar ones.
 */
function copySpec(
  accumulate: boolean,
  rank: number,
  texels: boolean,
  vec4 = false,
): Kernel<typeof COPY_U> {
  const key = `${accumulate}|${rank}|${texels}|${vec4}`;
  const hit = specCache.get(key);
  if (hit) return hit;
  let dims = "";
  for (let d = rank - 1; d >= 0; d--) {
    const at = `[${d >> 2}].${"xyzw"[d & 3]}`;
    dims +=
      `  { let s = u.shape${at}; let c = r % s; r = r / s; so += c * u.ss${at}; dof += c * u.ds${at}; }\n`;
  }
  const spec = kernel({
    name: (accumulate ? "strided_add" : "strided_copy") + (vec4 ? "_vec4" : ""),
    inputs: texels ? { S_tex: "texture" } : { S: vec4 ? "vec4f" : "f32" },
    outputs: { D: vec4 ? "vec4f" : "f32" },
    uniforms: COPY_U,
    wg: WG,
    decls: vec4
      ? (texels ? texelLoadFn("ldS", "S_tex") : "fn ldS(i: u32) -> vec4f { return S[i]; }")
      : texels
      ? texelLoadScalarFn("ldS", "S_tex")
      : "fn ldS(i: u32) -> f32 { return S[i]; }",
    id: "i",
    lanes: "u.n",
    body: /* wgsl */ `
  var r = i;
  var so = u.soff;
  var dof = u.doff;
${dims}  D[dof] ${accumulate ? "+=" : "="} ldS(so);`,
  });
  specCache.set(key, spec);
  return spec;
}
const specCache = new Map<string, Kernel<typeof COPY_U>>();

export interface View {
  readonly offset: number;
  readonly strides: readonly number[];
}

/** The general kernel: copy (or add) `src` viewed by `sv` into `dst` viewed by `dv`. */
export function stridedCopy(
  src: Tensor,
  sv: View,
  dst: Tensor,
  dv: View,
  shape: readonly number[],
  accumulate = false,
): Tensor {
  checkRank(shape, "strided copy");
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return dst;
  const rank = Math.max(1, shape.length);
  const u = {
    n,
    rank,
    soff: sv.offset,
    doff: dv.offset,
    shape: shape.length ? shape : [1],
    ss: sv.strides.slice(0, shape.length),
    ds: dv.strides.slice(0, shape.length),
  };
  const rt = src.rt;
  const texels = rt.isCpuAdapter && src.dtype === "f32" && rt.texelsFit(src.size);
  const v = vec4Units(src, sv, dst, dv, shape);
  const spec = copySpec(accumulate, rank, texels, !!v);
  spec.run(rt, [texels ? rt.texels(src, 24) : src, dst], v ?? u, v ? v.n : n);
  return dst;
}

/**
 * The uniform in vec4 units when the last axis is contiguous on both sides and every size,
 * stride and offset is a multiple of 4 (f32 tensors whose sizes are too); else undefined.
 */
function vec4Units(src: Tensor, sv: View, dst: Tensor, dv: View, shape: readonly number[]) {
  const r = shape.length, last = r - 1;
  if (r === 0 || src.dtype !== "f32" || dst.dtype !== "f32") return undefined;
  if (src.size % 4 || dst.size % 4 || shape[last] % 4 || sv.offset % 4 || dv.offset % 4) {
    return undefined;
  }
  if (sv.strides[last] !== 1 || dv.strides[last] !== 1) return undefined;
  for (let d = 0; d < last; d++) if (sv.strides[d] % 4 || dv.strides[d] % 4) return undefined;
  const q = (xs: readonly number[]) => xs.slice(0, r).map((x, d) => (d === last ? 1 : x / 4));
  const vshape = shape.map((x, d) => (d === last ? x / 4 : x));
  return {
    n: vshape.reduce((a, b) => a * b, 1),
    rank: r,
    soff: sv.offset / 4,
    doff: dv.offset / 4,
    shape: vshape,
    ss: q(sv.strides),
    ds: q(dv.strides),
  };
}

const contiguous = (shape: readonly number[]): View => ({ offset: 0, strides: stridesOf(shape) });

/** Permute dimensions: out.shape[d] = x.shape[perm[d]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
    throw new RangeError(`permute: [${perm}] is not a permutation of ${x.shape.length} axes`);
  }
  const st = stridesOf(x.shape);
  const shape = perm.map((p) => x.shape[p]);
  const out = x.rt.empty(shape);
  return stridedCopy(
    x,
    { offset: 0, strides: perm.map((p) => st[p]) },
    out,
    contiguous(shape),
    shape,
  );
}

/** The permutation of `rank` axes that swaps axes a and b (negative: from the end). */
export function swapPerm(rank: number, a: number, b: number): number[] {
  const perm = [...Array(rank).keys()];
  const i = normAxis(a, rank), j = normAxis(b, rank);
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return perm;
}

/** Swap two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  return permute(x, swapPerm(x.shape.length, a, b));
}

/** x[..., start:start+len, ...] along `axis`. */
export function slice(x: Tensor, axis: number, start: number, len: number): Tensor {
  const ax = normAxis(axis, x.shape.length);
  if (start < 0 || len < 0 || start + len > x.shape[ax]) {
    throw new RangeError(`slice: [${start}, ${start + len}) outside axis ${ax} of ${x}`);
  }
  const st = stridesOf(x.shape);
  const shape = x.shape.map((d, i) => (i === ax ? len : d));
  const out = x.rt.empty(shape);
  return stridedCopy(x, { offset: start * st[ax], strides: st }, out, contiguous(shape), shape);
}

/** Write (or add) `src` into dst[..., start:start+len, ...] along `axis` (slice's adjoint). */
export function sliceInto(dst: Tensor, src: Tensor, axis: number, start: number, add = false) {
  const ax = normAxis(axis, dst.shape.length);
  const st = stridesOf(dst.shape);
  return stridedCopy(
    src,
    contiguous(src.shape),
    dst,
    { offset: start * st[ax], strides: st },
    src.shape,
    add,
  );
}

/** Concatenate along `axis`. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new RangeError("concat of nothing");
  const ax = normAxis(axis, xs[0].shape.length);
  for (const x of xs) {
    if (
      x.shape.length !== xs[0].shape.length ||
      x.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])
    ) {
      throw new RangeError(`concat: ${x} does not match ${xs[0]} except on axis ${ax}`);
    }
  }
  const shape = xs[0].shape.map((d, i) => (i === ax ? xs.reduce((s, x) => s + x.shape[ax], 0) : d));
  const out = xs[0].rt.empty(shape);
  let at = 0;
  for (const x of xs) {
    sliceInto(out, x, ax, at);
    at += x.shape[ax];
  }
  return out;
}

/** Materialise x broadcast to `shape`. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const out = x.rt.empty(shape);
  return stridedCopy(
    x,
    { offset: 0, strides: broadcastStrides(x.shape, shape) },
    out,
    contiguous(shape),
    shape,
  );
}

/** Plain reference: permute a row-major array. */
export function permuteRef(
  data: ArrayLike<number>,
  shape: readonly number[],
  perm: readonly number[],
) {
  const st = stridesOf(shape);
  const os = perm.map((p) => shape[p]);
  const n = os.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let r = i, off = 0;
    for (let d = os.length - 1; d >= 0; d--) {
      off += (r % os[d]) * st[perm[d]];
      r = Math.floor(r / os[d]);
    }
    out[i] = data[off];
  }
  return out;
}
