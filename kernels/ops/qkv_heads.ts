/**
 * Attention inputs in one pass: q, k, v as the projections give them — token rows
 * (B·T, heads·hd) — to the head-major layout attention reads, (B, heads, T, hd), with q
 * scaled by `qScale` and q, k rotated (RoPE, Hugging Face's half-split pairs, per-token
 * positions) on the way. Composed, that was a scale, two rotations and three permutes.
 * `inverse` runs the transpose: head-major cotangents back to rows, rotated by −θ and
 * scaled (the VJP; every map here is linear, so tangents take the same kernel).
 *
 * One lane per rotation pair (d, d + hd/2) of one token and head; v's pairs are moved
 * unrotated. Segments absent from a call (a zero tangent) are skipped. On CPU adapters the
 * sources and tables are read as staged texels (texels.ts) when their sizes allow, and
 * where hd/2 % 4 = 0 each lane moves 4 pairs as vec4s.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { texelLoadFn, texelLoadScalarFn } from "../runtime/texels.ts";
import { type Elem, type Kernel, kernel, stageTexels } from "../runtime/kernel.ts";

const WG = 64;
const ROPE = 8; // flags: bits 0–2 = segment present

export interface HeadsLayout {
  readonly B: number;
  readonly T: number;
  readonly H: number;
  readonly Hkv: number;
  readonly hd: number;
  /** q's factor (the attention scale 1/√hd, applied before the rotation). */
  readonly qScale: number;
}

/** Rotation tables (P, hd/2) and each token's position (B·T, i32). */
export interface HeadsRope {
  readonly cos: Tensor;
  readonly sin: Tensor;
  readonly pos: Tensor;
}

const HEADS_U = {
  T: "u32",
  H: "u32",
  Hkv: "u32",
  hd: "u32",
  flags: "u32",
  n0: "u32",
  n1: "u32",
  n2: "u32",
  qScale: "f32",
  sign: "f32",
} as const;
const specs = new Map<string, Kernel<typeof HEADS_U>>();

/**
 * `vec`: each lane moves 4 consecutive pairs (d … d + 3 with their partners), reading and
 * writing vec4s (texel sources, hd/2 % 4 = 0): on lavapipe a quarter of the lanes and of the
 * per-lane storage stores, which dominated the scalar kernel (8 ms for a 1K meta-step's q, k, v).
 */
function spec(inverse: boolean, tex: boolean, vec: boolean): Kernel<typeof HEADS_U> {
  const key = `${inverse}|${tex}|${vec}`;
  let s = specs.get(key);
  if (s) return s;
  const src = ["S0", "S1", "S2", "COS", "SIN"];
  const inputs: Record<string, Elem | "texture"> = {};
  for (const n of src) inputs[tex ? `${n}_t` : n] = tex ? "texture" : "f32";
  inputs.POS = "i32";
  const loads = src.map((n) =>
    tex
      ? (vec ? texelLoadFn : texelLoadScalarFn)(`ld${n}`, `${n}_t`)
      : `fn ld${n}(i: u32) -> f32 { return ${n}[i]; }`
  ).join("\n");
  const t = vec ? "vec4f" : "f32";
  // Element i of a source or destination: scalar index, or the texel i / 4 (i % 4 = 0).
  const at = vec ? (i: string) => `(${i}) / 4u` : (i: string) => i;
  // Rows index (n, h, d) and head-major index (b, h, t, d) of a pair's first element.
  const [from, to] = inverse ? ["hi", "ri"] : ["ri", "hi"];
  s = kernel({
    name: vec ? "qkv_heads_vec4" : tex ? "qkv_heads_tex" : "qkv_heads",
    inputs,
    outputs: { D0: t, D1: t, D2: t },
    uniforms: HEADS_U,
    wg: WG,
    decls: loads,
    lanes: vec ? "u.n2 / 4u" : "u.n2",
    body: /* wgsl */ `
  // Segment: 0 = q (H heads), 1 = k, 2 = v (Hkv heads); lanes count pairs (vec: 4 pairs).
  let w = ${vec ? 4 : 1}u;
  var seg = 2u;
  var p = id * w - u.n1;
  var heads = u.Hkv;
  if (id * w < u.n0) { seg = 0u; p = id * w; heads = u.H; } else if (id * w < u.n1) { seg = 1u; p = id * w - u.n0; }
  if ((u.flags & (1u << seg)) == 0u) { return; }
  let half = u.hd / 2u;
  let d = p % half;
  let nh = p / half;
  let h = nh % heads;
  let n = nh / heads;
  let b = n / u.T;
  let t = n % u.T;
  let ri = n * heads * u.hd + h * u.hd + d;
  let hi = ((b * heads + h) * u.T + t) * u.hd + d;
  var x1: ${t};
  var x2: ${t};
  if (seg == 0u) { x1 = ldS0(${at(from)}); x2 = ldS0(${at(`${from} + half`)}); }
  else if (seg == 1u) { x1 = ldS1(${at(from)}); x2 = ldS1(${at(`${from} + half`)}); }
  else { x1 = ldS2(${at(from)}); x2 = ldS2(${at(`${from} + half`)}); }
  ${inverse ? "" : "if (seg == 0u) { x1 = u.qScale * x1; x2 = u.qScale * x2; }"}
  var y1 = x1;
  var y2 = x2;
  if (seg < 2u && (u.flags & ${ROPE}u) != 0u) {
    let f = u32(POS[n]) * half + d;
    let co = ldCOS(${at("f")});
    let sn = u.sign * ldSIN(${at("f")});
    y1 = x1 * co - x2 * sn;
    y2 = x2 * co + x1 * sn;
  }
  ${inverse ? "if (seg == 0u) { y1 = u.qScale * y1; y2 = u.qScale * y2; }" : ""}
  if (seg == 0u) { D0[${at(to)}] = y1; D0[${at(`${to} + half`)}] = y2; }
  else if (seg == 1u) { D1[${at(to)}] = y1; D1[${at(`${to} + half`)}] = y2; }
  else { D2[${at(to)}] = y1; D2[${at(`${to} + half`)}] = y2; }`,
  });
  specs.set(key, s);
  return s;
}

/**
 * Forward (rows → heads, scale q, rotate q and k) or `inverse` (heads → rows, rotate back,
 * scale q) of the present members of [q, k, v]; absent ones give undefined.
 */
export function qkvHeads(
  src: readonly (Tensor | undefined)[],
  L: HeadsLayout,
  rope: HeadsRope | undefined,
  inverse: boolean,
): (Tensor | undefined)[] {
  const present = src.filter((t): t is Tensor => !!t);
  if (!present.length) return [undefined, undefined, undefined];
  const rt = present[0].rt;
  const { B, T, H, Hkv, hd } = L;
  if (hd % 2) throw new RangeError(`qkvHeads: head size ${hd} must be even`);
  const N = B * T, half = hd / 2;
  const heads = [H, Hkv, Hkv];
  src.forEach((t, s) => {
    if (t && t.size !== N * heads[s] * hd) {
      throw new RangeError(`qkvHeads: ${t} is not ${N} tokens × ${heads[s]} heads × ${hd}`);
    }
  });
  if (rope && (rope.pos.size !== N || rope.pos.dtype !== "i32" || rope.cos.shape.at(-1) !== half)) {
    throw new RangeError(`qkvHeads: positions ${rope.pos} or tables ${rope.cos} do not fit`);
  }
  const out = src.map((t, s) => t && rt.empty(inverse ? [N, heads[s] * hd] : [B, heads[s], T, hd]));
  const n0 = N * H * half, n1 = n0 + N * Hkv * half, n2 = n1 + N * Hkv * half;
  const flags = src.reduce((f, t, s) => f | (t ? 1 << s : 0), 0) | (rope ? ROPE : 0);
  const u = { T, H, Hkv, hd, flags, n0, n1, n2, qScale: L.qScale, sign: inverse ? -1 : 1 };
  // Absent members read from a present one (never read) and write to scratch (never
  // written): bindings may not alias a written buffer.
  const scratch: Tensor[] = [];
  const dst = out.map((t) => t ?? (scratch[scratch.length] = rt.empty([4]))); // ≥ one vec4
  const sources = [
    ...src.map((t) => t ?? present[0]),
    rope?.cos ?? present[0],
    rope?.sin ?? present[0],
  ];
  const tex = rt.isCpuAdapter && sources.every((t) => rt.texelsFit(t.size));
  const read = tex ? stageTexels(rt, sources) : sources;
  const pos = rope?.pos ?? present[0];
  const vec = tex && half % 4 === 0;
  spec(inverse, tex, vec).run(rt, [...read, pos, ...dst], u, vec ? n2 / 4 : n2);
  scratch.forEach((t) => t.dispose());
  return out;
}

/**
 * float64 reference of one member of qkvHeads: rows x (B·T, heads·hd) → head-major
 * (B, heads, T, hd), scaled by s and, with `rope`, rotated at per-token positions by the
 * tables cos/sin (P, hd/2). q is (heads = H, s = qScale, rope), k (Hkv, 1, rope), v (Hkv, 1).
 */
export function qkvHeadsRef(
  x: ArrayLike<number>,
  { T, hd }: { readonly T: number; readonly hd: number },
  heads: number,
  s: number,
  rope?: {
    readonly pos: ArrayLike<number>;
    readonly cos: ArrayLike<number>;
    readonly sin: ArrayLike<number>;
  },
): Float64Array {
  const half = hd / 2, N = x.length / (heads * hd);
  const out = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    const b = Math.floor(n / T), t = n % T;
    for (let h = 0; h < heads; h++) {
      for (let d = 0; d < half; d++) {
        const i = n * heads * hd + h * hd + d, o = ((b * heads + h) * T + t) * hd + d;
        const x1 = s * x[i], x2 = s * x[i + half];
        const f = rope ? rope.pos[n] * half + d : 0;
        const co = rope ? rope.cos[f] : 1, sn = rope ? rope.sin[f] : 0;
        out[o] = x1 * co - x2 * sn;
        out[o + half] = x2 * co + x1 * sn;
      }
    }
  }
  return out;
}
