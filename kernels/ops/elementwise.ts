/**
 * Elementwise kernels from WGSL expressions (gpu.cpp style: a typed spec + a template).
 * `mapN(expr, inputs)` computes out[i] = expr(a, b, c, d) with NumPy broadcasting; inputs
 * are named a, b, c, d in the expression, the f32 parameters p.x … p.w. One pipeline per
 * (expression, input layout), not per shape: sizes and strides travel in a uniform, so a
 * model with many shapes compiles each op once (pipeline creation costs up to ~1 s here).
 *
 * Layouts: "same" (input has the output's shape: index i), "scalar" (one element) and
 * "strided" (broadcast: index from the output coordinate and per-dim strides, 0 where
 * broadcast). Optional accumulation (out += expr) serves gradient sums.
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../runtime/kernel.ts";
import { texelLoadFn, texelLoadScalarFn } from "../runtime/texels.ts";
import { broadcastShapes, broadcastStrides, checkRank, sameShape } from "./shape.ts";
import { UNARY, type UnaryName, WGSL_DERIVS, WGSL_MATH } from "./unary_table.ts";

const WG = 256;
const NAMES = ["a", "b", "c", "d"] as const;
type Layout = "same" | "scalar" | "strided";

const specCache = new Map<string, KernelSpec>();

/** The uniform both map kernels read; mapN packs it (n, rank, params, shape, strides). */
const MAP_UNIFORM =
  "struct U { n: u32, rank: u32, _0: u32, _1: u32, p: vec4f, shape: array<vec4u, 2>, st: array<vec4u, 8> }";

/**
 * The general (broadcasting) kernel, one pipeline per (expression, layouts, rank, texels):
 * broadcast offsets are unrolled over the rank with constant indices into the uniform (a
 * dynamic index is a per-lane gather on lavapipe). Inputs flagged in `texels` are read as
 * staged texels (kernels/runtime/texels.ts).
 */
function mapSpec(
  expr: string,
  layouts: readonly Layout[],
  accumulate: boolean,
  rank: number,
  texels: readonly boolean[],
): KernelSpec {
  const key = `${expr}|${layouts.join(",")}|${accumulate}|${rank}|${texels.join(",")}`;
  const hit = specCache.get(key);
  if (hit) return hit;
  const decl = layouts.map((_, k) =>
    texels[k]
      ? `@group(0) @binding(${k}) var I${k}: texture_2d<f32>;\n${
        texelLoadScalarFn(`ld${k}`, `I${k}`)
      }`
      : `@group(0) @binding(${k}) var<storage, read> I${k}: array<f32>;\nfn ld${k}(i: u32) -> f32 { return I${k}[i]; }`
  ).join("\n");
  const strided = layouts.flatMap((l, k) => (l === "strided" ? [k] : []));
  let offsets = strided.map((k) => `  var off${k} = 0u;\n`).join("");
  if (strided.length) {
    offsets += "  var r = i;\n";
    for (let d = rank - 1; d >= 0; d--) {
      const at = `[${d >> 2}].${"xyzw"[d & 3]}`;
      offsets += `  { let c = r % u.shape${at}; r = r / u.shape${at};${
        strided.map((k) => ` off${k} += c * u.st[${2 * k + (d >> 2)}].${"xyzw"[d & 3]};`).join("")
      } }\n`;
    }
  }
  const loads = layouts.map((l, k) => {
    const idx = l === "same" ? "i" : l === "scalar" ? "0u" : `off${k}`;
    return `  let ${NAMES[k]} = ld${k}(${idx});`;
  }).join("\n");
  const o = layouts.length;
  const code = /* wgsl */ `
${MAP_UNIFORM}
${decl}
@group(0) @binding(${o}) var<storage, read_write> O: array<f32>;
@group(0) @binding(${o + 1}) var<uniform> u: U;
${WGSL_MATH}
${WGSL_DERIVS}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let p = u.p;
${offsets}${loads}
  O[i] ${accumulate ? "+=" : "="} ${expr};
}`;
  const spec: KernelSpec = {
    name: `map(${expr.length > 40 ? expr.slice(0, 40) + "…" : expr})`,
    code,
    bindings: [
      ...texels.map((t) => (t ? "texture" as const : "read" as const)),
      "read_write",
      "uniform",
    ],
  };
  specCache.set(key, spec);
  return spec;
}

/**
 * The 4-wide kernel: each lane computes 4 consecutive outputs with one vec4 store. Inputs
 * "same" or "scalar" only (no broadcasting strides); u.n counts vec4s. With `texels`, the
 * "same" inputs are read as staged texels: lavapipe turns every storage load into a loop
 * over the 8 lanes (kernels/runtime/texels.ts), and `a + b` runs 4.5× faster this way.
 */
function mapSpec4(
  expr: string,
  layouts: readonly Layout[],
  accumulate: boolean,
  texels: boolean,
): KernelSpec {
  const key = `4|${expr}|${layouts.join(",")}|${accumulate}|${texels}`;
  const hit = specCache.get(key);
  if (hit) return hit;
  const tex = (l: Layout) => texels && l === "same";
  const decl = layouts.map((l, k) =>
    tex(l)
      ? `@group(0) @binding(${k}) var I${k}: texture_2d<f32>;\n${texelLoadFn(`ld${k}`, `I${k}`)}`
      : `@group(0) @binding(${k}) var<storage, read> I${k}: array<${
        l === "same" ? "vec4f" : "f32"
      }>;`
  ).join("\n");
  const loads = layouts.map((l, k) =>
    `  let v${NAMES[k]} = ${tex(l) ? `ld${k}(i)` : l === "same" ? `I${k}[i]` : `vec4f(I${k}[0])`};`
  ).join("\n");
  const args = NAMES.map((_, k) => `${NAMES[k]}: f32`).join(", ");
  const call = (c: string) =>
    `f(${NAMES.map((n, k) => (k < layouts.length ? `v${n}.${c}` : "0.0")).join(", ")}, p)`;
  const o = layouts.length;
  const code = /* wgsl */ `
${MAP_UNIFORM}
${decl}
@group(0) @binding(${o}) var<storage, read_write> O: array<vec4f>;
@group(0) @binding(${o + 1}) var<uniform> u: U;
${WGSL_MATH}
${WGSL_DERIVS}
fn f(${args}, p: vec4f) -> f32 { return ${expr}; }
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * ${WG}u + lid;
  if (i >= u.n) { return; }
  let p = u.p;
${loads}
  O[i] ${accumulate ? "+=" : "="} vec4f(${["x", "y", "z", "w"].map(call).join(", ")});
}`;
  const spec: KernelSpec = {
    name: `map4(${expr.length > 40 ? expr.slice(0, 40) + "…" : expr})`,
    code,
    bindings: [
      ...layouts.map((l) => (tex(l) ? "texture" as const : "read" as const)),
      "read_write",
      "uniform",
    ],
  };
  specCache.set(key, spec);
  return spec;
}

/** Dispatches of the 4-wide kernel (tests check both kernels ran). */
export const mapStats = { wide: 0 };

export interface MapOptions {
  /** Up to four f32 parameters, `p.x … p.w` in the expression. */
  readonly params?: readonly number[];
  /** Write here (shape must equal the broadcast shape) instead of a new tensor. */
  readonly out?: Tensor;
  /** out += expr instead of out = expr (needs `out`). */
  readonly accumulate?: boolean;
}

/** out = expr(a, b, c, d) elementwise with broadcasting. Returns `out` (new unless given). */
export function mapN(expr: string, inputs: readonly Tensor[], o: MapOptions = {}): Tensor {
  if (inputs.length < 1 || inputs.length > 4) throw new RangeError("mapN takes 1–4 inputs");
  const rt: Runtime = inputs[0].rt;
  for (const t of inputs) {
    if (t.dtype !== "f32") throw new TypeError(`elementwise ops take f32 tensors, got ${t}`);
  }
  const shape = broadcastShapes(...inputs.map((t) => t.shape));
  checkRank(shape, "elementwise");
  const out = o.out ?? rt.empty(shape);
  if (o.out && !sameShape(o.out.shape, shape) && o.out.size !== inputs[0].size) {
    throw new RangeError(`elementwise: out ${o.out} does not have the result shape [${shape}]`);
  }
  if (o.accumulate && !o.out) throw new RangeError("elementwise: accumulate needs `out`");
  const n = out.size;
  if (n === 0) return out;
  const layouts: Layout[] = inputs.map((t) =>
    t.size === n ? "same" : t.size === 1 ? "scalar" : "strided"
  );
  // Uniform: n, rank, pad, pad, p (vec4f), shape (8 u32), strides (4 inputs × 8 u32).
  const words = new ArrayBuffer(4 * (8 + 8 + 32));
  const u32 = new Uint32Array(words), f32 = new Float32Array(words);
  u32[0] = n;
  u32[1] = Math.max(1, shape.length);
  (o.params ?? []).forEach((v, k) => (f32[4 + k] = v));
  shape.forEach((d, k) => (u32[8 + k] = d));
  if (shape.length === 0) u32[8] = 1;
  inputs.forEach((t, k) => {
    if (layouts[k] !== "strided") return;
    broadcastStrides(t.shape, shape).forEach((s, dd) => (u32[16 + 8 * k + dd] = s));
  });
  if (n % 4 === 0 && layouts.every((l) => l !== "strided")) {
    u32[0] = n / 4;
    mapStats.wide++;
    const texels = rt.isCpuAdapter && rt.texelsFit(n);
    const spec = mapSpec4(expr, layouts, o.accumulate ?? false, texels);
    const ins = inputs.map((t, k) => (texels && layouts[k] === "same" ? rt.texels(t, 16 + k) : t));
    rt.dispatch(spec, [...ins, out, rt.uniform(u32)], grid1d(cdiv(n / 4, WG)));
    return out;
  }
  const texels = inputs.map((t, k) =>
    rt.isCpuAdapter && layouts[k] !== "scalar" && rt.texelsFit(t.size)
  );
  const spec = mapSpec(expr, layouts, o.accumulate ?? false, u32[1], texels);
  const ins = inputs.map((t, k) => (texels[k] ? rt.texels(t, 16 + k) : t));
  rt.dispatch(spec, [...ins, out, rt.uniform(u32)], grid1d(cdiv(n, WG)));
  return out;
}

// ------------------------------------------------------------------ named ops

export const add = (a: Tensor, b: Tensor, o?: MapOptions) => mapN("a + b", [a, b], o);
export const sub = (a: Tensor, b: Tensor, o?: MapOptions) => mapN("a - b", [a, b], o);
export const mul = (a: Tensor, b: Tensor, o?: MapOptions) => mapN("a * b", [a, b], o);
export const div = (a: Tensor, b: Tensor, o?: MapOptions) => mapN("a / b", [a, b], o);
/** s·a + t (t defaults to 0). */
export const scale = (a: Tensor, s: number, o?: MapOptions & { shift?: number }) =>
  mapN("p.x * a + p.y", [a], { ...o, params: [s, o?.shift ?? 0] });

/** A unary function from the table, e.g. unary("gelu_tanh", x); `q` is its parameter. */
export function unary(name: UnaryName, x: Tensor, q = 1, o?: MapOptions): Tensor {
  const def = UNARY[name];
  if (!def) throw new RangeError(`unknown unary op '${name}' (have ${Object.keys(UNARY)})`);
  return mapN(inline(def.f), [x], { ...o, params: [q] });
}

/** f'(x)·g — the VJP of a unary op (fused: one pass). */
export function unaryGrad(name: UnaryName, x: Tensor, g: Tensor, q = 1, o?: MapOptions): Tensor {
  return mapN(`b * ${inline(UNARY[name].d1)}`, [x, g], { ...o, params: [q] });
}

/**
 * Tangent of the unary VJP g·f'(x): ġ·f'(x) + g·f''(x)·ẋ (one fused pass; forward-over-reverse
 * needs it for every unary op).
 */
export function unaryGradTangent(
  name: UnaryName,
  x: Tensor,
  gDot: Tensor,
  g: Tensor,
  xDot: Tensor,
  q = 1,
): Tensor {
  const d = UNARY[name];
  return mapN(`b * ${inline(d.d1)} + c * d * ${inline(d.d2)}`, [x, gDot, g, xDot], {
    params: [q],
  });
}

/** Substitute the table's `x`/`q` with the kernel's input `a` and parameter `p.x`. */
function inline(expr: string): string {
  return `(${expr.replace(/\bx\b/g, "a").replace(/\bq\b/g, "p.x")})`;
}

// ------------------------------------------------------------------ references

/** Plain reference of a broadcasting elementwise op (float64 arithmetic). */
export function mapRef(
  fn: (...v: number[]) => number,
  inputs: { data: ArrayLike<number>; shape: readonly number[] }[],
): { data: Float64Array; shape: number[] } {
  const shape = broadcastShapes(...inputs.map((t) => t.shape));
  const n = shape.reduce((x, y) => x * y, 1);
  const strides = inputs.map((t) => broadcastStrides(t.shape, shape));
  const out = new Float64Array(n);
  const idx = new Array(shape.length).fill(0);
  const vals = new Array(inputs.length);
  for (let i = 0; i < n; i++) {
    let r = i;
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d] = r % shape[d];
      r = Math.floor(r / shape[d]);
    }
    for (let k = 0; k < inputs.length; k++) {
      let off = 0;
      for (let d = 0; d < shape.length; d++) off += idx[d] * strides[k][d];
      vals[k] = inputs[k].data[off];
    }
    out[i] = fn(...vals);
  }
  return { data: out, shape };
}
