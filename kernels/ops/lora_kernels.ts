/**
 * The skinny products of a LoRA adapter (x (rows, in), A (in, r), r small) with the adapter's
 * input dropout applied inside the product — no separate dropout pass — and an optional
 * second product summed in, so a tangent (ḋ(x·A) = ẋ·A + x·Ȧ) is one dispatch too:
 *   down   U  = drop(x₁)·A₁ (+ drop(x₂)·A₂)                         (rows, r)
 *   up     Y  = C + drop(G₁·A₁ᵀ (+ G₂·A₂ᵀ))                          (rows, in)
 *   gradA  Ā  = drop(x₁)ᵀ·G₁ (+ drop(x₂)ᵀ·G₂)                         (in, r)
 * drop(·) is nn_kernels.ts `dropout` on a (rows, in) tensor: the same mask (seed, element
 * index) on every operand of that shape. The rules using them are kernels/autodiff/lora.ts.
 *
 * Two families: on CPU adapters with in and r multiples of 4, operands are read as staged
 * texels (lavapipe's storage loads are per-lane loops, see runtime/texels.ts) and each lane
 * computes a vec4 of outputs; elsewhere one lane per output reads storage buffers.
 * `loraProductsRef` is the float64 reference.
 */
import type { Tensor } from "../runtime/tensor.ts";
import { texelLoadFn } from "../runtime/texels.ts";
import { type Kernel, kernel, stageTexels } from "../runtime/kernel.ts";

const WG = 64;
const HAS2 = 1, DROP = 2, ACC = 4;

/** Dropout as the product applies it: p and seed (none: keep all, scale 1). */
export interface LoraDrop {
  readonly p: number;
  readonly seed: number;
}

const LORA_U = {
  rows: "u32",
  inDim: "u32",
  r: "u32",
  flags: "u32",
  seed: "u32",
  threshold: "u32",
  scale: "f32",
} as const;
type LoraKernel = Kernel<typeof LORA_U>;

const HEAD = /* wgsl */ `
fn hash(x: u32) -> u32 { // lowbias32, as nn_kernels.ts dropout
  var h = x;
  h ^= h >> 16u; h *= 0x7feb352du; h ^= h >> 15u; h *= 0x846ca68bu; h ^= h >> 16u;
  return h;
}
fn has(bit: u32) -> bool { return (u.flags & bit) != 0u; }
// The dropout factor of element i of a (rows, in) tensor (1 without dropout).
fn keep(i: u32) -> f32 {
  if (!has(${DROP}u)) { return 1.0; }
  return select(0.0, u.scale, hash(i ^ hash(u.seed)) >= u.threshold);
}
fn keep4(i: u32) -> vec4f { return vec4f(keep(i), keep(i + 1u), keep(i + 2u), keep(i + 3u)); }`;

type Kind = "down" | "up" | "gradA";
const specs = new Map<string, LoraKernel>();

/** Storage family: one lane per output element. */
function plainSpec(kind: Kind): LoraKernel {
  const key = `plain:${kind}`;
  let s = specs.get(key);
  if (s) return s;
  // Bindings: P1 (x or G), Q1 (A), P2, Q2, C (accumulated, up only), OUT.
  const body = {
    // U[row, j] = Σ_k keep·x[row, k]·A[k, j]
    down: `
  let row = id / u.r;
  let j = id % u.r;
  var acc = 0.0;
  for (var k = 0u; k < u.inDim; k++) {
    let i = row * u.inDim + k;
    var x = P1[i] * Q1[k * u.r + j];
    if (has(${HAS2}u)) { x += P2[i] * Q2[k * u.r + j]; }
    acc += keep(i) * x;
  }
  OUT[id] = acc;`,
    // Y[row, k] = C + keep·Σ_j G[row, j]·A[k, j]
    up: `
  let row = id / u.inDim;
  let k = id % u.inDim;
  var acc = 0.0;
  for (var j = 0u; j < u.r; j++) {
    acc += P1[row * u.r + j] * Q1[k * u.r + j];
    if (has(${HAS2}u)) { acc += P2[row * u.r + j] * Q2[k * u.r + j]; }
  }
  var y = keep(id) * acc;
  if (has(${ACC}u)) { y += C[id]; }
  OUT[id] = y;`,
    // Ā[k, j] = Σ_row keep·x[row, k]·G[row, j]
    gradA: `
  let k = id / u.r;
  let j = id % u.r;
  var acc = 0.0;
  for (var row = 0u; row < u.rows; row++) {
    let i = row * u.inDim + k;
    var x = P1[i] * Q1[row * u.r + j];
    if (has(${HAS2}u)) { x += P2[i] * Q2[row * u.r + j]; }
    acc += keep(i) * x;
  }
  OUT[id] = acc;`,
  }[kind];
  const n = { down: "u.rows * u.r", up: "u.rows * u.inDim", gradA: "u.inDim * u.r" }[kind];
  s = kernel({
    name: `lora_${kind}`,
    inputs: { P1: "f32", Q1: "f32", P2: "f32", Q2: "f32", C: "f32" },
    outputs: { OUT: "f32" },
    uniforms: LORA_U,
    wg: WG,
    decls: HEAD,
    lanes: n,
    body,
  });
  specs.set(key, s);
  return s;
}

/** down: the lane's accumulators c0…c3 += x·A[4k4…4k4+3, j0 + c] (c < nj). */
function downTerms(x: string, q: string): string {
  return [0, 1, 2, 3].map((c) => {
    const at = (k: number) => `ld${q}(a + ${c}u${k ? ` + ${k}u * r4` : ""})`;
    const term = `c${c} += ${x}.x * ${at(0)} + ${x}.y * ${at(1)} + ${x}.z * ${at(2)} + ${x}.w * ${
      at(3)
    };`;
    return c === 0 ? `    ${term}` : `    if (nj > ${c}u) { ${term} }`;
  }).join("\n");
}

/** up: the lane's rows y0…y3 += G[row, j4]·(A[4k4 + c, j4])_c (rows < nr). */
function upTerms(p: string, q: string): string {
  const a = `    let q0 = ld${q}(a); let q1 = ld${q}(a + r4); let q2 = ld${q}(a + 2u * r4);
    let q3 = ld${q}(a + 3u * r4);`;
  const rows = [0, 1, 2, 3].map((i) => {
    const t =
      `{ let g = ld${p}((r0 + ${i}u) * r4 + j4); y${i} += vec4f(dot(g, q0), dot(g, q1), dot(g, q2), dot(g, q3)); }`;
    return i === 0 ? `    ${t}` : `    if (nr > ${i}u) ${t}`;
  });
  return [a, ...rows].join("\n");
}

/**
 * Texel family (in % 4 = r % 4 = 0; CPU adapters): each lane up to 4×4 outputs, so operand
 * loads and dropout hashes are shared (down: one row, 16 columns of U; up: 4 rows × 4
 * columns; gradA: a 4×4 block of Ā).
 */
function texSpec(kind: Kind): LoraKernel {
  const key = `tex:${kind}`;
  let s = specs.get(key);
  if (s) return s;
  const body = {
    // lane = (row, up to 4 texel columns j0…j0+3 of U): x and its dropout mask are read
    // once for all of them. U[row, 4j..4j+3] = Σ_k keep·x[row, k]·A[k, 4j..4j+3]
    down: `
  let r4 = u.r / 4u;
  let in4 = u.inDim / 4u;
  let jbs = (r4 + 3u) / 4u;
  if (id >= u.rows * jbs) { return; }
  let row = id / jbs;
  let j0 = (id % jbs) * 4u;
  let nj = min(4u, r4 - j0);
  var c0 = vec4f(0.0); var c1 = vec4f(0.0); var c2 = vec4f(0.0); var c3 = vec4f(0.0);
  for (var k4 = 0u; k4 < in4; k4++) {
    let m = keep4(row * u.inDim + 4u * k4);
    let a = 4u * k4 * r4 + j0;
    let x = m * ldP1(row * in4 + k4);
${downTerms("x", "Q1")}
    if (has(${HAS2}u)) {
      let y = m * ldP2(row * in4 + k4);
${downTerms("y", "Q2")}
    }
  }
  let o = row * r4 + j0;
  OUT[o] = c0;
  if (nj > 1u) { OUT[o + 1u] = c1; }
  if (nj > 2u) { OUT[o + 2u] = c2; }
  if (nj > 3u) { OUT[o + 3u] = c3; }`,
    // lane = (up to 4 rows r0…r0+3, k4): each A texel is read once for the rows.
    // Y[row, 4k4..4k4+3] = C + keep·Σ_j G[row, j]·A[4k4 + c, j]
    up: `
  let r4 = u.r / 4u;
  let in4 = u.inDim / 4u;
  if (id >= ((u.rows + 3u) / 4u) * in4) { return; }
  let k4 = id % in4;
  let r0 = (id / in4) * 4u;
  let nr = min(4u, u.rows - r0);
  var y0 = vec4f(0.0); var y1 = vec4f(0.0); var y2 = vec4f(0.0); var y3 = vec4f(0.0);
  for (var j4 = 0u; j4 < r4; j4++) {
    let a = 4u * k4 * r4 + j4;
${upTerms("P1", "Q1")}
    if (has(${HAS2}u)) {
${upTerms("P2", "Q2")}
    }
  }
${
      [0, 1, 2, 3].map((i) =>
        `  if (nr > ${i}u) {
    let o = (r0 + ${i}u) * in4 + k4;
    var v = keep4((r0 + ${i}u) * u.inDim + 4u * k4) * y${i};
    if (has(${ACC}u)) { v += C[o]; }
    OUT[o] = v;
  }`
      ).join("\n")
    }`,
    // lane = 4×4 block (k4, j4) of Ā, summing over every row (no barriers: on a CPU
    // adapter a workgroup reduction costs more than the rows; blocks fill the cores)
    gradA: `
  let r4 = u.r / 4u;
  let in4 = u.inDim / 4u;
  if (id >= in4 * r4) { return; }
  let k4 = id / r4;
  let j4 = id % r4;
  var a0 = vec4f(0.0); var a1 = vec4f(0.0); var a2 = vec4f(0.0); var a3 = vec4f(0.0);
  for (var row = 0u; row < u.rows; row++) {
    let m = keep4(row * u.inDim + 4u * k4);
    let x = m * ldP1(row * in4 + k4);
    let g = ldQ1(row * r4 + j4);
    a0 += x.x * g; a1 += x.y * g; a2 += x.z * g; a3 += x.w * g;
    if (has(${HAS2}u)) {
      let y = m * ldP2(row * in4 + k4);
      let h = ldQ2(row * r4 + j4);
      a0 += y.x * h; a1 += y.y * h; a2 += y.z * h; a3 += y.w * h;
    }
  }
  let o = 4u * k4 * r4 + j4;
  OUT[o] = a0;
  OUT[o + r4] = a1;
  OUT[o + 2u * r4] = a2;
  OUT[o + 3u * r4] = a3;`,
  }[kind];
  s = kernel({
    name: `lora_${kind}_tex`,
    inputs: { P1: "texture", Q1: "texture", P2: "texture", Q2: "texture", C: "vec4f" },
    outputs: { OUT: "vec4f" },
    uniforms: LORA_U,
    wg: WG,
    decls: [HEAD, ...["P1", "Q1", "P2", "Q2"].map((t) => texelLoadFn(`ld${t}`, t))].join("\n"),
    unguarded: true,
    body,
  });
  specs.set(key, s);
  return s;
}

interface Pair {
  readonly p: Tensor;
  readonly q: Tensor;
}

function launch(
  kind: Kind,
  rows: number,
  inDim: number,
  r: number,
  pairs: readonly Pair[],
  drop: LoraDrop | undefined,
  acc: Tensor | undefined,
  out: Tensor,
): Tensor {
  const rt = out.rt;
  if (!pairs.length || pairs.length > 2) throw new RangeError(`lora_${kind}: 1 or 2 products`);
  const [p1, p2 = p1] = pairs;
  const flags = (pairs.length === 2 ? HAS2 : 0) | (drop && drop.p > 0 ? DROP : 0) |
    (acc ? ACC : 0);
  const u = {
    rows,
    inDim,
    r,
    flags,
    seed: (drop?.seed ?? 0) >>> 0,
    threshold: drop ? Math.min(0xffffffff, Math.round(drop.p * 4294967296)) : 0,
    scale: drop ? 1 / (1 - drop.p) : 1,
  };
  const operands = [p1.p, p1.q, p2.p, p2.q];
  const tex = rt.isCpuAdapter && inDim % 4 === 0 && r % 4 === 0 &&
    operands.every((t) => rt.texelsFit(t.size));
  if (tex) {
    // Stage all four, then dispatch: the views are bound before any slot is restaged.
    const views = stageTexels(rt, operands);
    const lanes = kind === "down"
      ? rows * r / 4
      : kind === "up"
      ? rows * inDim / 4
      : inDim * r / 16;
    // Without C the binding still needs a buffer other than the output (no aliasing).
    texSpec(kind).run(rt, [...views, acc ?? p1.p, out], u, lanes);
  } else {
    const n = kind === "down" ? rows * r : kind === "up" ? rows * inDim : inDim * r;
    plainSpec(kind).run(rt, [...operands, acc ?? p1.p, out], u, n);
  }
  return out;
}

function dims(x: Tensor, a: Tensor): { rows: number; inDim: number; r: number } {
  const inDim = a.shape[0], r = a.shape[1];
  if (a.shape.length !== 2 || x.shape.at(-1) !== inDim) {
    throw new RangeError(`lora: x ${x} and A ${a} do not chain (x (rows, in), A (in, r))`);
  }
  return { rows: x.size / inDim, inDim, r };
}

/** U = drop(x₁)·A₁ (+ drop(x₂)·A₂): x (rows, in), A (in, r) → (rows, r). */
export function loraDown(pairs: readonly Pair[], drop?: LoraDrop): Tensor {
  const { rows, inDim, r } = dims(pairs[0].p, pairs[0].q);
  const out = pairs[0].p.rt.empty([rows, r]);
  return launch("down", rows, inDim, r, pairs, drop, undefined, out);
}

/**
 * Y = C + drop(G₁·A₁ᵀ (+ G₂·A₂ᵀ)): G (rows, r), A (in, r) → (rows, in) shaped like `like`
 * (C, when given, has that shape too).
 */
export function loraUp(
  pairs: readonly Pair[],
  like: readonly number[],
  drop?: LoraDrop,
  acc?: Tensor,
): Tensor {
  const a = pairs[0].q, inDim = a.shape[0], r = a.shape[1];
  const rows = pairs[0].p.size / r;
  if (rows * inDim !== like.reduce((x, y) => x * y, 1) || (acc && acc.size !== rows * inDim)) {
    throw new RangeError(`lora up: G ${pairs[0].p} · A ${a}ᵀ does not give [${like}]`);
  }
  const out = a.rt.empty(like);
  return launch("up", rows, inDim, r, pairs, drop, acc, out);
}

/** Ā = drop(x₁)ᵀ·G₁ (+ drop(x₂)ᵀ·G₂): x (rows, in), G (rows, r) → (in, r), into `out`. */
export function loraGradA(
  pairs: readonly Pair[],
  inDim: number,
  r: number,
  drop?: LoraDrop,
  out?: Tensor,
): Tensor {
  const x = pairs[0].p, rows = x.size / inDim;
  if (x.shape.at(-1) !== inDim || pairs[0].q.size !== rows * r) {
    throw new RangeError(`lora gradA: x ${x} and G ${pairs[0].q} do not fit (${inDim}, ${r})`);
  }
  const o = out ?? x.rt.empty([inDim, r]);
  if (o.size !== inDim * r) throw new RangeError(`lora gradA: out ${o} is not (${inDim}, ${r})`);
  return launch("gradA", rows, inDim, r, pairs, drop, undefined, o);
}

/** Float64 reference of the three products (row-major arrays; mask from dropoutMaskRef). */
export function loraProductsRef(
  kind: Kind,
  pairs: readonly { p: ArrayLike<number>; q: ArrayLike<number> }[],
  rows: number,
  inDim: number,
  r: number,
  mask?: ArrayLike<number>,
  acc?: ArrayLike<number>,
): Float64Array {
  const m = (i: number) => (mask ? mask[i] : 1);
  if (kind === "down") {
    const out = new Float64Array(rows * r);
    for (const { p, q } of pairs) {
      for (let row = 0; row < rows; row++) {
        for (let j = 0; j < r; j++) {
          let s = 0;
          for (let k = 0; k < inDim; k++) {
            s += m(row * inDim + k) * p[row * inDim + k] * q[k * r + j];
          }
          out[row * r + j] += s;
        }
      }
    }
    return out;
  }
  if (kind === "up") {
    const out = new Float64Array(rows * inDim);
    for (let row = 0; row < rows; row++) {
      for (let k = 0; k < inDim; k++) {
        let s = 0;
        for (const { p, q } of pairs) {
          for (let j = 0; j < r; j++) s += p[row * r + j] * q[k * r + j];
        }
        out[row * inDim + k] = (acc ? acc[row * inDim + k] : 0) + m(row * inDim + k) * s;
      }
    }
    return out;
  }
  const out = new Float64Array(inDim * r);
  for (const { p, q } of pairs) {
    for (let k = 0; k < inDim; k++) {
      for (let j = 0; j < r; j++) {
        let s = 0;
        for (let row = 0; row < rows; row++) {
          s += m(row * inDim + k) * p[row * inDim + k] * q[row * r + j];
        }
        out[k * r + j] += s;
      }
    }
  }
  return out;
}
