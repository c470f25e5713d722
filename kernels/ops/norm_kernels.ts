/**
 * Fused RMSNorm kernels: y = x·r·w with r = 1/√(mean(x²) + ε) over each row (the last axis),
 * its tangent, the input gradient, and that gradient's tangent (forward-over-reverse HVPs),
 * each ONE dispatch (composed of elementwise ops and reductions the forward alone took six,
 * its backward ten). The rules are in kernels/autodiff/norm.ts.
 *
 * One lane per row, summing in order (as the composed ops' reduction does; rows are at most
 * a model width long). Absent operands (no weight, a zero tangent) are flagged in the
 * uniform and their binding is filled by x, which is never read through it.
 *
 * With a = g·w, s = Σ a·x, q = Σ x·ẋ, ṙ = −r³·q/C (per row, C = row length):
 *   forward   y   = x·r·w
 *   tangent   ẏ   = (ẋ·r + x·ṙ)·w + x·r·ẇ
 *   gradient  x̄   = r·a − x·r³·s/C                       (w̄ = Σ_rows g·x·r: see norm.ts)
 *   its tangent   = ṙ·a + r·ȧ − ẋ·r³·s/C − x·(3r²·ṙ·s + r³·ṡ)/C,  ȧ = ġ·w + g·ẇ,
 *                   ṡ = Σ (ȧ·x + a·ẋ)
 */
import type { Tensor } from "../runtime/tensor.ts";
import { type Kernel, kernel, type KernelDecl } from "../runtime/kernel.ts";

const WG = 64;
const HAS_W = 1, HAS_DX = 2, HAS_DG = 4, HAS_DW = 8, HAS_ACC = 16;

const NORM_U = { rows: "u32", C: "u32", eps: "f32", flags: "u32", invC: "f32" } as const;
type NormKernel = Kernel<typeof NORM_U>;

/**
 * The four kernels for rows moved one float (VW = 1) or one vec4 (VW = 4, rows of C % 4 = 0:
 * a quarter of the storage loads, which on lavapipe are per-lane loops) per load. Row sums add
 * the components one at a time in column order (sum4, acc3), so both give the same results
 * bit for bit. T is the element type; the loops run over the row's CN = C / VW elements.
 */
function normKernels(VW: 1 | 4) {
  const T = VW === 4 ? "vec4f" : "f32";
  const HEAD = /* wgsl */ `
fn has(bit: u32) -> bool { return (u.flags & bit) != 0u; }
fn w_at(c: u32) -> ${T} {
  if (has(${HAS_W}u)) { return W[c]; }
  return ${T}(1.0);
}
${
    VW === 4
      ? `fn sum4(acc: f32, v: vec4f) -> f32 { return (((acc + v.x) + v.y) + v.z) + v.w; }
fn acc3(acc: vec3f, p: vec4f, q: vec4f, e: vec4f) -> vec3f {
  return (((acc + vec3f(p.x, q.x, e.x)) + vec3f(p.y, q.y, e.y)) + vec3f(p.z, q.z, e.z)) +
    vec3f(p.w, q.w, e.w);
}`
      : `fn sum4(acc: f32, v: f32) -> f32 { return acc + v; }
fn acc3(acc: vec3f, p: f32, q: f32, e: f32) -> vec3f { return acc + vec3f(p, q, e); }`
  }`;
  /** One lane per row (rows are short; lanes are cheap SIMD lanes on lavapipe), row sums in order. */
  const PROLOGUE = /* wgsl */ `
  let CN = u.C / ${VW}u;
  let base = row * CN;
  var ss = 0.0;
  for (var c = 0u; c < CN; c++) { let x = X[base + c]; ss = sum4(ss, x * x); }
  let t = ss * u.invC + u.eps; // mean(x²) + ε
  let r = inverseSqrt(t);`;
  const sfx = VW === 4 ? "_vec4" : "";
  /** A row kernel: the shared uniform, helpers and prologue (r of the row), then `body`. */
  const normKernel = (
    d: Pick<KernelDecl<typeof NORM_U>, "name" | "inputs" | "outputs" | "body" | "decls">,
  ): NormKernel =>
    kernel({
      ...d,
      name: d.name + sfx,
      uniforms: NORM_U,
      wg: WG,
      decls: HEAD + (d.decls ?? ""),
      id: "row",
      lanes: "u.rows",
      body: PROLOGUE + d.body,
    });

  /**
   * x (rows, C), w (C) → y. The arithmetic is the composed ops' (x², an ordered row sum, ·1/C,
   * +ε, inverseSqrt, ·r, ·w), so the result is theirs bit for bit on lavapipe.
   */
  const forward = normKernel({
    name: "rms_norm",
    inputs: { X: T, W: T },
    outputs: { Y: T },
    body: /* wgsl */ `
  for (var c = 0u; c < CN; c++) { Y[base + c] = X[base + c] * r * w_at(c); }`,
  });

  /** x, w, ẋ, ẇ → ẏ = (ẋ·r + x·ṙ)·w + x·r·ẇ, ṙ = −r³·Σ(x·ẋ)/C. */
  const tangent = normKernel({
    name: "rms_norm_tangent",
    inputs: { X: T, W: T, DX: T, DW: T },
    outputs: { Y: T },
    body: /* wgsl */ `
  var q = 0.0;
  if (has(${HAS_DX}u)) {
    for (var c = 0u; c < CN; c++) { q = sum4(q, X[base + c] * DX[base + c]); }
  }
  let rd = -r * r * r * q * u.invC;
  for (var c = 0u; c < CN; c++) {
    let i = base + c;
    var y = X[i] * rd * w_at(c);
    if (has(${HAS_DX}u)) { y += DX[i] * r * w_at(c); }
    if (has(${HAS_DW}u)) { y += X[i] * r * DW[c]; }
    Y[i] = y;
  }`,
  });

  /**
   * x, g, w (, C) → (C +) x̄, x̄ = a·r + x·2·(1/C)·(−½·r/t)·Σ(a·x), a = g·w, t = mean(x²) + ε:
   * the composed ops' backward, rounding for rounding (the square's, the mean's, the rsqrt's and
   * the two products' cotangents, summed as the tape sums them onto x's earlier cotangent C).
   */
  const grad = normKernel({
    name: "rms_norm_grad",
    inputs: { X: T, G: T, W: T, CI: T },
    outputs: { D: T },
    body: /* wgsl */ `
  var s = 0.0;
  for (var c = 0u; c < CN; c++) { let a = G[base + c] * w_at(c); s = sum4(s, a * X[base + c]); }
  let gs = u.invC * (s * (-0.5 * inverseSqrt(t) / t));
  for (var c = 0u; c < CN; c++) {
    let i = base + c;
    var d = G[i] * w_at(c) * r;
    if (has(${HAS_ACC}u)) { d = CI[i] + d; }
    D[i] = d + gs * (2.0 * X[i]);
  }`,
  });

  /**
   * x, g, w, ẋ, ġ, ẇ (, Ċ) → the tangent of (C +) x̄, x̄ = r·a − x·r³·s/C (a = g·w, s = Σ a·x):
   * (Ċ +) ṙ·a + r·ȧ − ẋ·r³·s/C − x·(3r²·ṙ·s + r³·ṡ)/C, ȧ = ġ·w + g·ẇ, ṡ = Σ (ȧ·x + a·ẋ).
   */
  const gradTangent = normKernel({
    name: "rms_norm_grad_tangent",
    inputs: { X: T, G: T, W: T, DX: T, DG: T, DW: T, DC: T },
    outputs: { D: T },
    decls: /* wgsl */ `
fn ad_at(i: u32, c: u32) -> ${T} {
  var v = ${T}(0.0);
  if (has(${HAS_DG}u)) { v += DG[i] * w_at(c); }
  if (has(${HAS_DW}u)) { v += G[i] * DW[c]; }
  return v;
}
fn dx_at(i: u32) -> ${T} {
  if (has(${HAS_DX}u)) { return DX[i]; }
  return ${T}(0.0);
}
`,
    body: /* wgsl */ `
  var acc = vec3f(0.0); // s = Σ a·x, q = Σ x·ẋ, ṡ = Σ (ȧ·x + a·ẋ)
  for (var c = 0u; c < CN; c++) {
    let i = base + c;
    let x = X[i];
    let a = G[i] * w_at(c);
    let xd = dx_at(i);
    acc = acc3(acc, a * x, x * xd, ad_at(i, c) * x + a * xd);
  }
  let r3 = r * r * r;
  let rd = -r3 * acc.y * u.invC;
  let k = (3.0 * r * r * rd * acc.x + r3 * acc.z) * u.invC;
  let k2 = r3 * acc.x * u.invC;
  for (var c = 0u; c < CN; c++) {
    let i = base + c;
    var d = rd * G[i] * w_at(c) + r * ad_at(i, c) - dx_at(i) * k2 - X[i] * k;
    if (has(${HAS_ACC}u)) { d += DC[i]; }
    D[i] = d;
  }`,
  });
  return { forward, tangent, grad, gradTangent };
}

type Which = keyof ReturnType<typeof normKernels>;
const SCALAR = normKernels(1), VEC4 = normKernels(4);

function launch(
  which: Which,
  x: Tensor,
  w: Tensor | undefined,
  eps: number,
  flags: number,
  operands: readonly (Tensor | undefined)[],
): Tensor {
  const C = x.shape.at(-1)!, rows = x.size / Math.max(1, C), rt = x.rt;
  if (w && (w.size !== C || w.dtype !== "f32")) {
    throw new RangeError(`rmsNorm: weight ${w} does not match rows of ${C} (${x})`);
  }
  for (const t of operands) {
    if (t && t.size !== x.size && t.size !== C) {
      throw new RangeError(`rmsNorm: operand ${t} does not fit ${x}`);
    }
  }
  const y = rt.empty(x.shape);
  const u = { rows, C, eps, flags: flags | (w ? HAS_W : 0), invC: 1 / C };
  const k = (C % 4 === 0 ? VEC4 : SCALAR)[which];
  k.run(rt, [...operands.map((t) => t ?? x), y], u, rows);
  return y;
}

/** y = x·r·w (w of the row length C, or none: x·r) over the last axis of x. */
export function rmsNormRows(x: Tensor, w: Tensor | undefined, eps: number): Tensor {
  return launch("forward", x, w, eps, 0, [x, w]);
}

/** ẏ for tangents ẋ (shape of x) and ẇ (C); either may be undefined (zero). */
export function rmsNormTangent(
  x: Tensor,
  w: Tensor | undefined,
  dx: Tensor | undefined,
  dw: Tensor | undefined,
  eps: number,
): Tensor {
  const flags = (dx ? HAS_DX : 0) | (dw ? HAS_DW : 0);
  return launch("tangent", x, w, eps, flags, [x, w, dx, dw]);
}

/** x̄ = ∂/∂x ⟨g, rmsNorm(x, w)⟩, added onto `acc` (x's cotangent so far) when given. */
export function rmsNormGrad(
  x: Tensor,
  g: Tensor,
  w: Tensor | undefined,
  acc: Tensor | undefined,
  eps: number,
): Tensor {
  return launch("grad", x, w, eps, acc ? HAS_ACC : 0, [x, g, w, acc]);
}

/**
 * The tangent of x̄ for tangents ẋ, ġ (shape of x) and ẇ (C), plus that of `acc` (dacc) when
 * x̄ was added onto one; any may be undefined.
 */
export function rmsNormGradTangent(
  x: Tensor,
  g: Tensor,
  w: Tensor | undefined,
  dx: Tensor | undefined,
  dg: Tensor | undefined,
  dw: Tensor | undefined,
  dacc: Tensor | undefined,
  eps: number,
): Tensor {
  const flags = (dx ? HAS_DX : 0) | (dg ? HAS_DG : 0) | (dw ? HAS_DW : 0) | (dacc ? HAS_ACC : 0);
  return launch("gradTangent", x, w, eps, flags, [x, g, w, dx, dg, dw, dacc]);
}

// ------------------------------------------------------------------ float64 references

/** Reference of rmsNormRows: x (rows, C) · rsqrt(mean(x²) + eps) · w. */
export function rmsNormRef(
  x: ArrayLike<number>,
  C: number,
  w: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let ms = 0;
    for (let c = 0; c < C; c++) ms += x[r * C + c] ** 2 / C;
    const rs = 1 / Math.sqrt(ms + eps);
    for (let c = 0; c < C; c++) out[r * C + c] = x[r * C + c] * rs * w[c];
  }
  return out;
}

/**
 * Reference of rmsNormGrad: cotangents of rmsNormRef for output cotangent g, in closed form:
 * x̄ = r·a − x·r³·Σ(a·x)/C with a = g·w, and w̄ = Σ_rows g·x·r (the fused kernels' formulas,
 * derived independently of the composed ops).
 */
export function rmsNormVjpRef(
  x: ArrayLike<number>,
  C: number,
  w: ArrayLike<number>,
  g: ArrayLike<number>,
  eps: number,
): { x: Float64Array; w: Float64Array } {
  const dx = new Float64Array(x.length), dw = new Float64Array(C);
  for (let r = 0; r < x.length / C; r++) {
    let ms = 0, s = 0;
    for (let c = 0; c < C; c++) {
      ms += x[r * C + c] ** 2 / C;
      s += g[r * C + c] * w[c] * x[r * C + c];
    }
    const rs = 1 / Math.sqrt(ms + eps);
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = rs * g[i] * w[c] - (x[i] * rs ** 3 * s) / C;
      dw[c] += g[i] * x[i] * rs;
    }
  }
  return { x: dx, w: dw };
}

/**
 * Reference of LayerNorm, which has no fused kernel (autodiff/nn.ts composes it from
 * differentiable ops): (x − mean) · rsqrt(var + eps) · w + b over rows of length C.
 */
export function layerNormRef(
  x: ArrayLike<number>,
  C: number,
  w: ArrayLike<number>,
  b: ArrayLike<number> | undefined,
  eps: number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += x[r * C + c] / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c] - mu) ** 2 / C;
    const rs = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) {
      out[r * C + c] = (x[r * C + c] - mu) * rs * w[c] + (b ? b[c] : 0);
    }
  }
  return out;
}
