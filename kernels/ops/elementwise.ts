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
import { type Elem, type Kernel, kernel } from "../runtime/kernel.ts";
import { texelLoadFn, texelLoadScalarFn } from "../runtime/texels.ts";
import { broadcastShapes, broadcastStrides, checkRank, sameShape } from "./shape.ts";
import { UNARY, type UnaryName, WGSL_DERIVS, WGSL_MATH } from "./unary_table.ts";

const WG = 256;
const NAMES = ["a", "b", "c", "d"] as const;
type Layout = "same" | "scalar" | "strided";

/** The uniform both map kernels read; mapN packs it (n, rank, params, shape, strides). */
const MAP_U = {
  n: "u32",
  rank: "u32",
  p: "vec4f",
  shape: "array<vec4u, 2>",
  st: "array<vec4u, 8>",
} as const;
type MapKernel = Kernel<typeof MAP_U>;
const specCache = new Map<string, MapKernel>();

/** A map kernel: one lane per output (or vec4 of outputs), `p` = the expression's params. */
function mapKernel(
  family: string,
  expr: string,
  inputs: Record<string, Elem | "texture">,
  out: Elem,
  decls: string,
  body: string,
): MapKernel {
  return kernel({
    name: `${family}(${expr.length > 40 ? expr.slice(0, 40) + "…" : expr})`,
    inputs,
    outputs: { O: out },
    uniforms: MAP_U,
    wg: WG,
    decls,
    id: "i",
    lanes: "u.n",
    body: `  let p = u.p;\n${body}`,
  });
}

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
): MapKernel {
  const key = `${expr}|${layouts.join(",")}|${accumulate}|${rank}|${texels.join(",")}`;
  const hit = specCache.get(key);
  if (hit) return hit;
  const inputs: Record<string, Elem | "texture"> = {};
  layouts.forEach((_, k) => (inputs[`I${k}`] = texels[k] ? "texture" : "f32"));
  const lds = layouts.map((_, k) =>
    texels[k]
      ? texelLoadScalarFn(`ld${k}`, `I${k}`)
      : `fn ld${k}(i: u32) -> f32 { return I${k}[i]; }`
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
  const spec = mapKernel(
    "map",
    expr,
    inputs,
    "f32",
    `${lds}\n${WGSL_MATH}\n${WGSL_DERIVS}`,
    `${offsets}${loads}
  O[i] ${accumulate ? "+=" : "="} ${expr};`,
  );
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
): MapKernel {
  const key = `4|${expr}|${layouts.join(",")}|${accumulate}|${texels}`;
  const hit = specCache.get(key);
  if (hit) return hit;
  const tex = (l: Layout) => texels && l === "same";
  const inputs: Record<string, Elem | "texture"> = {};
  layouts.forEach((l, k) => {
    inputs[`I${k}`] = tex(l) ? "texture" : l === "same" ? "vec4f" : "f32";
  });
  const lds = layouts.flatMap((l, k) => (tex(l) ? [texelLoadFn(`ld${k}`, `I${k}`)] : []));
  const loads = layouts.map((l, k) =>
    `  let v${NAMES[k]} = ${tex(l) ? `ld${k}(i)` : l === "same" ? `I${k}[i]` : `vec4f(I${k}[0])`};`
  ).join("\n");
  const args = NAMES.map((_, k) => `${NAMES[k]}: f32`).join(", ");
  const call = (c: string) =>
    `f(${NAMES.map((n, k) => (k < layouts.length ? `v${n}.${c}` : "0.0")).join(", ")}, p)`;
  const spec = mapKernel(
    "map4",
    expr,
    inputs,
    "vec4f",
    [...lds, WGSL_MATH, WGSL_DERIVS, `fn f(${args}, p: vec4f) -> f32 { return ${expr}; }`]
      .join("\n"),
    `${loads}
  O[i] ${accumulate ? "+=" : "="} vec4f(${["x", "y", "z", "w"].map(call).join(", ")});`,
  );
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
  // Uniform: n, rank, p (vec4f), shape (8 u32), strides (4 inputs × 8 u32).
  const rank = Math.max(1, shape.length);
  const shapeW = shape.length ? shape : [1];
  const st = new Array<number>(32).fill(0);
  inputs.forEach((t, k) => {
    if (layouts[k] !== "strided") return;
    broadcastStrides(t.shape, shape).forEach((s, dd) => (st[8 * k + dd] = s));
  });
  const u = { n, rank, p: o.params ?? [], shape: shapeW, st };
  if (n % 4 === 0 && layouts.every((l) => l !== "strided")) {
    mapStats.wide++;
    const texels = rt.isCpuAdapter && rt.texelsFit(n);
    const spec = mapSpec4(expr, layouts, o.accumulate ?? false, texels);
    const ins = inputs.map((t, k) => (texels && layouts[k] === "same" ? rt.texels(t, 16 + k) : t));
    spec.run(rt, [...ins, out], { ...u, n: n / 4 }, n / 4);
    return out;
  }
  const texels = inputs.map((t, k) =>
    rt.isCpuAdapter && layouts[k] !== "scalar" && rt.texelsFit(t.size)
  );
  const spec = mapSpec(expr, layouts, o.accumulate ?? false, rank, texels);
  const ins = inputs.map((t, k) => (texels[k] ? rt.texels(t, 16 + k) : t));
  spec.run(rt, [...ins, out], u, n);
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
