/**
 * SwiGLU's backward as two-output elementwise kernels (the forward and its tangent are
 * one-output maps: elementwise.ts `mapN`). With s = silu(a) = a·σ(a), s' and s'' from the
 * unary table (unary_table.ts), for y = s(a)·b and output cotangent g:
 *   grad     ā = (g·b)·s'(a),   b̄ = g·s(a)
 *   tangent  ā̇ = (ġ·b + g·ḃ)·s'(a) + (g·b)·ȧ·s''(a),   ḃ̄ = ġ·s(a) + g·(ȧ·s'(a))
 * Each expression is the composed ops' (mul, silu, their VJPs and tangents) term for term,
 * so results match them. Composed, the gradient took three dispatches and its tangent three
 * more; here one each. The rules are in kernels/autodiff/swiglu.ts.
 *
 * Inputs are named a, b, g, da, db, dg (a missing tangent is flagged and reads as 0). On CPU
 * adapters with sizes a multiple of 4, lanes compute vec4s from staged texels (texels.ts, as
 * the 4-wide map kernel); elsewhere one lane per element reads storage buffers.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { texelLoadFn } from "../runtime/texels.ts";
import { type Elem, type Kernel, kernel, stageTexels } from "../runtime/kernel.ts";
import { UNARY, WGSL_MATH } from "./unary_table.ts";

const WG = 256;
const at = (e: string, v: string) => `(${e.replace(/\bx\b/g, v)})`;
const S = (v: string) => at(UNARY.silu.f, v);
const S1 = (v: string) => at(UNARY.silu.d1, v);
const S2 = (v: string) => at(UNARY.silu.d2, v);

/** Output expressions of each kernel (a, b, g, da, db, dg: f32 values). */
const EXPRS = {
  grad: [`(g * b) * ${S1("a")}`, `g * ${S("a")}`],
  tangent: [
    `(dg * b + g * db) * ${S1("a")} + (g * b) * da * ${S2("a")}`,
    `dg * ${S("a")} + g * (da * ${S1("a")})`,
  ],
} as const;
const NAMES = ["a", "b", "g", "da", "db", "dg"];

const SWIGLU_U = { n: "u32", flags: "u32" } as const;
const specs = new Map<string, Kernel<typeof SWIGLU_U>>();

function spec(kind: keyof typeof EXPRS, inputs: number, vec4: boolean): Kernel<typeof SWIGLU_U> {
  const key = `${kind}|${vec4}`;
  let s = specs.get(key);
  if (s) return s;
  const names = NAMES.slice(0, inputs);
  const ins: Record<string, Elem | "texture"> = {};
  for (const n of names) ins[`I_${n}`] = vec4 ? "texture" : "f32";
  const texLoads = vec4 ? names.map((n) => texelLoadFn(`ld_${n}`, `I_${n}`)).join("\n") : "";
  // Each input loaded once; a flagged-absent tangent reads as 0 (its binding holds another
  // input).
  const loads = names.map((n, k) => {
    const v = vec4 ? `ld_${n}(i)` : `I_${n}[i]`;
    const z = vec4 ? "vec4f(0.0)" : "0.0";
    return `  let v_${n} = ${
      k >= 3 ? `select(${z}, ${v}, (u.flags & ${1 << (k - 3)}u) != 0u)` : v
    };`;
  }).join("\n");
  const args = names.map((n) => `${n}: f32`).join(", ");
  const call = (c: string) => names.map((n) => `v_${n}${c}`).join(", ");
  const [e0, e1] = EXPRS[kind];
  const ty = vec4 ? "vec4f" : "f32";
  const store = (f: string) =>
    vec4
      ? `vec4f(${[".x", ".y", ".z", ".w"].map((c) => `${f}(${call(c)})`).join(", ")})`
      : `${f}(${call("")})`;
  s = kernel({
    name: `swiglu_${kind}${vec4 ? "_tex" : ""}`,
    inputs: ins,
    outputs: { O0: ty, O1: ty },
    uniforms: SWIGLU_U,
    wg: WG,
    decls: /* wgsl */ `${texLoads}
${WGSL_MATH}
fn f0(${args}) -> f32 { return ${e0}; }
fn f1(${args}) -> f32 { return ${e1}; }`,
    id: "i",
    lanes: "u.n",
    body: /* wgsl */ `${loads}
  O0[i] = ${store("f0")};
  O1[i] = ${store("f1")};`,
  });
  specs.set(key, s);
  return s;
}

function launch(kind: keyof typeof EXPRS, xs: readonly (Tensor | undefined)[]): [Tensor, Tensor] {
  const a = xs[0]!, rt = a.rt, n = a.size;
  for (const t of xs) {
    if (t && (t.size !== n || t.dtype !== "f32")) {
      throw new RangeError(`swiglu: ${t} does not match ${a}`);
    }
  }
  const out: [Tensor, Tensor] = [rt.empty(a.shape), rt.empty(a.shape)];
  const vec4 = rt.isCpuAdapter && rt.texelsFit(n);
  const flags = xs.slice(3).reduce((f, t, k) => f | (t ? 1 << k : 0), 0);
  const present = xs.map((t) => t ?? a);
  const read = vec4 ? stageTexels(rt, present) : present;
  const lanes = vec4 ? n / 4 : n;
  spec(kind, xs.length, vec4).run(rt, [...read, ...out], { n: lanes, flags }, lanes);
  return out;
}

/** [ā, b̄] of y = silu(a)·b for the output cotangent g. */
export const swigluGrad = (a: Tensor, b: Tensor, g: Tensor): [Tensor, Tensor] =>
  launch("grad", [a, b, g]);

/** The tangents of [ā, b̄] for tangents ȧ, ḃ, ġ (any may be undefined: zero). */
export const swigluGradTangent = (
  a: Tensor,
  b: Tensor,
  g: Tensor,
  da: Tensor | undefined,
  db: Tensor | undefined,
  dg: Tensor | undefined,
): [Tensor, Tensor] => launch("tangent", [a, b, g, da, db, dg]);

/** WGSL (in a, b and c, d as mapN names them) of y = silu(a)·b and its tangent parts. */
export const SWIGLU_MAP = {
  /** y = s(a)·b */
  value: `${S("a")} * b`,
  /** ȧ·s'(a)·b + s(a)·ḃ with ȧ = c, ḃ = d; and the one-tangent forms (a, b, ȧ = c). */
  tangent: `(c * ${S1("a")}) * b + ${S("a")} * d`,
  tangentA: `(c * ${S1("a")}) * b`,
  /** s(a)·ḃ with ḃ as the second input (b). */
  tangentB: `${S("a")} * b`,
} as const;

/** float64 reference of swiglu: silu(a)·b elementwise, silu(x) = x / (1 + e^(−x)). */
export function swigluRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (x, i) => (x / (1 + Math.exp(-x))) * b[i]);
}
