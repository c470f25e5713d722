/**
 * WGSL building blocks every attention kernel shares, in both families: the header (uniform
 * struct, vector type, mask helpers), the row / column prologues, the bindings, the plain
 * family's key / query loops and the rewrite of storage reads into texel reads.
 *
 * Shapes (see mod.ts): rows are query rows (b, h, t) of q (B, H, T, D); key rows are (b, g, j)
 * of k / v (B, Hkv, S, D). Vectors are NV slots of VT (vec4f when D % 4 = 0, else f32).
 */
import type { BindingKind, KernelSpec } from "../../runtime/kernel.ts";
import { texelLoadFn } from "../../runtime/texels.ts";

/** Lanes per workgroup (rows per workgroup in row / column kernels). */
export const WG = 64;

/** Flag bits of the uniform (which masks apply, which optional tensors are bound). */
export const F = {
  causal: 1,
  seg: 2,
  dq: 4,
  dk: 8,
  dv: 16,
  dgo: 32,
  dO: 64,
  dL: 128,
  gL: 256,
  dgL: 512,
} as const;

/** vec4 path when D % 4 = 0 (VT = vec4f, NV = D/4), else scalar (VT = f32, NV = D). */
export function vecOf(D: number): { v4: boolean; NV: number; VT: string } {
  const v4 = D % 4 === 0;
  return { v4, NV: v4 ? D / 4 : D, VT: v4 ? "vec4f" : "f32" };
}

const SEG_OK = `
fn segOk(b: u32, t: u32, j: u32) -> bool {
  return !has(${F.seg}u) || SEG[b * u.T + t] == SEG[b * u.S + j];
}`;
/** Uniform struct, vector type and mask helpers; `seg` adds segOk (reads SEG). */
export const HEAD = (D: number, seg = true): string => {
  const { v4, VT, NV } = vecOf(D);
  return /* wgsl */ `
alias VT = ${VT};
const NV = ${NV}u;
struct U { n: u32, H: u32, Hkv: u32, T: u32, S: u32, grp: u32, flags: u32, scale: f32 }
fn vdot(a: VT, b: VT) -> f32 { return ${v4 ? "dot(a, b)" : "a * b"}; }
fn has(f: u32) -> bool { return (u.flags & f) != 0u; }
// Causal: query t sees keys j <= t + (S - T).
fn keyEnd(t: u32) -> u32 {
  if (!has(${F.causal}u)) { return u.S; }
  return u32(clamp(i32(t) + i32(u.S) - i32(u.T) + 1, 0, i32(u.S)));
}
fn queryStart(j: u32) -> u32 {
  if (!has(${F.causal}u)) { return 0u; }
  return u32(clamp(i32(j) - i32(u.S) + i32(u.T), 0, i32(u.T)));
}
${seg ? SEG_OK : ""}`;
};
export const ARGS =
  `@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32`;
export const MAIN = `@compute @workgroup_size(${WG})
fn main(${ARGS}) {`;
/**
 * Row-kernel prologue. A workgroup covers WG consecutive query rows of ONE (b, h), so the
 * key index and the key-row address are the same for every lane: lavapipe then loads each
 * key once per workgroup instead of gathering it per lane. The key loop runs to the last
 * row's end (uniform); each lane masks the keys it does not see (vis) instead of branching.
 */
export const ROW = `
  let bh = wid.y + wid.z * nwg.y;
  let t0 = wid.x * ${WG}u;
  let live = t0 + lid < u.T && bh < u.n;
  let t = min(t0 + lid, u.T - 1u);
  let id = min(bh, u.n - 1u) * u.T + t;
  let b = id / (u.T * u.H);
  let kb = (b * u.Hkv + (id / u.T) % u.H / u.grp) * u.S;
  let qr = id * NV;
  let myEnd = keyEnd(t);
  let jEnd = keyEnd(min(t0 + ${WG - 1}u, u.T - 1u));`;
/** Column-kernel prologue: as ROW with the roles swapped (WG key rows of one (b, kv head)). */
export const COL = `
  let bk = wid.y + wid.z * nwg.y;
  let j0 = wid.x * ${WG}u;
  let live = j0 + lid < u.S && bk < u.n;
  let j = min(j0 + lid, u.S - 1u);
  let id = min(bk, u.n - 1u) * u.S + j;
  let b = id / (u.S * u.Hkv);
  let h0 = (id / u.S) % u.Hkv * u.grp;
  let kr = id * NV;
  let myStart = queryStart(j);
  let i0 = queryStart(j0);`;
/** Per-lane (not per-row) kernels: one lane per item, ids past the end return. */
export const MAIN_LANE = `@compute @workgroup_size(${WG})
fn main(${ARGS}) {
  let id = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (id >= u.n) { return; }`;
/** Which tangents are bound (the tangent kernels' flags as booleans). */
export const FLAGS_LET = `
  let hq = has(${F.dq}u);
  let hk = has(${F.dk}u);
  let hv = has(${F.dv}u);
  let hg = has(${F.dgo}u);`;

/**
 * Plain family, row kernels: every key up to the workgroup's last end; the body sees vis
 * (this lane sees key j) and kr (key j's first vector slot).
 */
export const ROW_LOOP = (body: string): string =>
  `for (var j = 0u; j < jEnd; j++) {
    let vis = j < myEnd && segOk(b, t, j);
    let kr = (kb + j) * NV;${body}
  }`;
/**
 * Plain family, column kernels: every query head of the kv head's group, every query from
 * the workgroup's first start; the body sees vis, r (the query row), qr and st = ST[r].
 */
export const COL_LOOP = (body: string): string =>
  `for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i = i0; i < u.T; i++) {
      let vis = i >= myStart && segOk(b, i, j);
      let r = rb + i;
      let qr = r * NV;
      let st = ST[r];${body}
    }
  }`;

/** Bindings as [name, element type, read_write?]; the uniform comes after them. */
export type BindList = readonly (readonly [string, string, boolean?])[];

const bind = (i: number, name: string, type: string, rw = false) =>
  `@group(0) @binding(${i}) var<storage, ${rw ? "read_write" : "read"}> ${name}: array<${type}>;`;
/**
 * WGSL declarations and binding kinds for a list; the uniform comes last. With `texels`,
 * every read-only vec4 array is a texture instead, read through `ld_NAME(i)` (texels.ts).
 */
export function bindings(
  list: BindList,
  texels = false,
): { wgsl: string; kinds: KernelSpec["bindings"] } {
  const asTex = ([, t, rw]: BindList[number]) => texels && !rw && (t === "VT" || t === "vec4f");
  const wgsl =
    list.map((e, i) =>
      asTex(e)
        ? `@group(0) @binding(${i}) var ${e[0]}_tex: texture_2d<f32>;\n${
          texelLoadFn(`ld_${e[0]}`, `${e[0]}_tex`)
        }`
        : bind(i, e[0], e[1], e[2])
    ).join("\n") + `\n@group(0) @binding(${list.length}) var<uniform> u: U;`;
  return {
    wgsl,
    kinds: [
      ...list.map((e): BindingKind => (asTex(e) ? "texture" : e[2] ? "read_write" : "read")),
      "uniform",
    ],
  };
}

/** `NAME[expr]` → `ld_NAME(expr)` for each name (brackets matched, so expr may nest). */
export function viaTexels(code: string, names: readonly string[]): string {
  for (const name of names) {
    const re = new RegExp(`\\b${name}\\[`, "g");
    let out = "", last = 0;
    for (let m = re.exec(code); m; m = re.exec(code)) {
      let depth = 1, i = m.index + m[0].length;
      for (; i < code.length && depth > 0; i++) {
        if (code[i] === "[") depth++;
        else if (code[i] === "]") depth--;
      }
      out += code.slice(last, m.index) + `ld_${name}(` + code.slice(m.index + m[0].length, i - 1) +
        ")";
      last = i;
      re.lastIndex = i;
    }
    code = out + code.slice(last);
  }
  return code;
}

/** `acc += Σ_d vdot(a(d), b(d))` over the NV vector slots, as a statement. */
export const dotInto = (acc: string, a: string, b: string): string =>
  `for (var d = 0u; d < NV; d++) { ${acc} += vdot(${a}, ${b}); }`;
/** `body` once per vector slot d. */
export const forD = (body: string): string => `for (var d = 0u; d < NV; d++) { ${body} }`;

/**
 * Specs are built once per (name, D): pipelines are specialised per (kernel, D, family)
 * only, because pipeline creation costs up to ~1 s on lavapipe.
 */
const specCache = new Map<string, KernelSpec>();
export function spec(name: string, D: number, make: () => KernelSpec): KernelSpec {
  const key = `${name}/${D}`;
  let s = specCache.get(key);
  if (!s) specCache.set(key, s = make());
  return s;
}
