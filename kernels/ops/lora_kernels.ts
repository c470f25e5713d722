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
 * Two families: on CPU adapters with 8-lane subgroups and in, r multiples of 4, operands are
 * read as staged texels (lavapipe's storage loads are per-lane loops, see runtime/texels.ts)
 * by register-blocked subgroup kernels (sgSpec); elsewhere one lane per output reads storage
 * buffers.
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

const C4 = ["x", "y", "z", "w"];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Subgroup texel family (CPU adapters with 8-lane subgroups; in % 4 = r % 4 = 0): the design
 * of matmul_subgroup.ts — no shared memory; the operand every lane of a subgroup needs is
 * loaded once, a different row per lane, and handed round with `subgroupBroadcast`; in, r and
 * the flags baked in (one pipeline per layer shape), rows in the uniform block. Each lane
 * owns a block of outputs, so a loaded texel feeds 4–16 FMAs (the lane-per-vec4 texel kernels
 * this replaced fed one: 0.5–1 GFLOP/s on lavapipe, 27% of a meta-step's GPU time).
 *   down   lane: 4 rows (8 apart) × 16 columns of U; A's k-rows broadcast; loop over in
 *   up     lane: 4 rows (8 apart) × 16 columns of Y; A's rows broadcast; loop over r / 4
 *   gradA  lane: 4 columns of x × 16 columns of Ā; G's rows broadcast; loop over rows
 * Columns of r beyond 16 take more workgroups (grid y); edges are clamped loads (branch-free,
 * the subgroup stays uniform) with zeroed contributions and guarded stores.
 */
function sgSpec(kind: Kind, inDim: number, r: number, flags: number): LoraKernel {
  const key = `sg:${kind}:${inDim}:${r}:${flags}`;
  let s = specs.get(key);
  if (s) return s;
  const two = (flags & HAS2) !== 0, drop = (flags & DROP) !== 0, acc = (flags & ACC) !== 0;
  const IN4 = inDim / 4, R4 = r / 4, CN = Math.min(4, R4), J = range(CN), I = range(4);
  const ps = two ? [["P1", "Q1"], ["P2", "Q2"]] : [["P1", "Q1"]];
  // The loop body's lines for each product, each product's names in a scope of its own.
  const perProduct = (lines: (p: string, q: string) => string[]) =>
    ps.map(([p, q]) => `    {\n${lines(p, q).map((l) => `      ${l}`).join("\n")}\n    }`)
      .join("\n    // the second product\n");
  // x texel t with its dropout factors (elements 4t … 4t + 3).
  const xload = (p: string, t: string) =>
    drop ? `(keep4(4u * (${t})) * ld${p}(${t}))` : `ld${p}(${t})`;
  const colBlock = `let jb = wg.y * ${CN}u;  // first texel column of r in this workgroup`;
  let body: string;
  if (kind === "down") {
    // U[row, j] = Σ_k keep·x[row, k]·A[k, j]; K = in rounded up to 8, the rest zeroed.
    const k8 = Math.ceil(inDim / 8) * 8;
    const step = perProduct((p, q) => [
      ...J.map((j) =>
        `let bv${j} = select(vec4f(0.0), ld${q}(min(k0 + lane, ${
          inDim - 1
        }u) * ${R4}u + min(jb + ${j}u, ${R4 - 1}u)), k0 + lane < ${inDim}u);`
      ),
      ...I.flatMap((i) =>
        [0, 1].map((h) =>
          `let a${i}_${h} = ${xload(p, `xr${i} + min(k0 / 4u + ${h}u, ${IN4 - 1}u)`)};`
        )
      ),
      ...range(8).flatMap((q) =>
        J.map((j) =>
          `{ let b = subgroupBroadcast(bv${j}, ${q}u); ${
            I.map((i) => `c${i}_${j} = fma(vec4f(a${i}_${q >> 2}.${C4[q & 3]}), b, c${i}_${j});`)
              .join(" ")
          } }`
        )
      ),
    ]);
    body = `
  let row0 = (wg.x * 4u + li / 8u) * 32u + lane;  // this lane's rows: row0 + 8i
  ${colBlock}
  ${I.map((i) => `let xr${i} = min(row0 + ${8 * i}u, u.rows - 1u) * ${IN4}u;`).join("\n  ")}
  ${I.flatMap((i) => J.map((j) => `var c${i}_${j} = vec4f(0.0);`)).join(" ")}
  for (var k0 = 0u; k0 < ${k8}u; k0 += 8u) {
${step}
  }
  ${
      I.map((i) =>
        `if (row0 + ${8 * i}u < u.rows) {\n${
          J.map((j) =>
            `    if (jb + ${j}u < ${R4}u) { OUT[(row0 + ${
              8 * i
            }u) * ${R4}u + jb + ${j}u] = c${i}_${j}; }`
          ).join("\n")
        }\n  }`
      ).join("\n  ")
    }`;
  } else if (kind === "up") {
    // Y[row, k] = C + keep·Σ_j G[row, j]·A[k, j]: per r-texel j4, the 16 A texels of the
    // lane's columns (2 loaded per lane) and one G texel per row; dots into component m % 4.
    const step = perProduct((p, q) => [
      ...[0, 1].map((h) =>
        `let bv${h} = ld${q}(min(kb + lane + ${8 * h}u, ${inDim - 1}u) * ${R4}u + j4);`
      ),
      ...I.map((i) => `let g${i} = ld${p}(gr${i} + j4);`),
      ...range(16).map((m) =>
        `{ let b = subgroupBroadcast(bv${m >> 3}, ${m & 7}u); ${
          I.map((i) => `y${i}_${m >> 2}.${C4[m & 3]} += dot(g${i}, b);`).join(" ")
        } }`
      ),
    ]);
    const store = (i: number, t: number) => {
      const o = `(row0 + ${8 * i}u) * ${IN4}u + k4 + ${t}u`;
      let v = drop ? `keep4(4u * (${o})) * y${i}_${t}` : `y${i}_${t}`;
      if (acc) v += ` + C[${o}]`;
      return `    if (k4 + ${t}u < ${IN4}u) { OUT[${o}] = ${v}; }`;
    };
    body = `
  let k4 = wg.x * 4u;  // first output texel column (16 columns: A rows kb … kb + 15)
  let kb = 4u * k4;
  let row0 = (wg.y * 4u + li / 8u) * 32u + lane;
  ${I.map((i) => `let gr${i} = min(row0 + ${8 * i}u, u.rows - 1u) * ${R4}u;`).join("\n  ")}
  ${I.flatMap((i) => range(4).map((t) => `var y${i}_${t} = vec4f(0.0);`)).join(" ")}
  for (var j4 = 0u; j4 < ${R4}u; j4++) {
${step}
  }
  ${
      I.map((i) =>
        `if (row0 + ${8 * i}u < u.rows) {\n${range(4).map((t) => store(i, t)).join("\n")}\n  }`
      ).join("\n  ")
    }`;
  } else {
    // Ā[k, j] = Σ_row keep·x[row, k]·G[row, j]: rows in steps of 8 (G row per lane, zero
    // past the end), the lane's x texel column for each of the 8 rows.
    const step = perProduct((p, q) => [
      ...J.map((j) =>
        `let bv${j} = select(vec4f(0.0), ld${q}(min(k0 + lane, u.rows - 1u) * ${R4}u + min(jb + ${j}u, ${
          R4 - 1
        }u)), k0 + lane < u.rows);`
      ),
      ...range(8).flatMap((q) => [
        `{ let x = ${xload(p, `min(k0 + ${q}u, u.rows - 1u) * ${IN4}u + kv`)};`,
        ...J.map((j) =>
          `  let b${j} = subgroupBroadcast(bv${j}, ${q}u); ${
            I.map((c) => `a${c}_${j} = fma(vec4f(x.${C4[c]}), b${j}, a${c}_${j});`).join(" ")
          }`
        ),
        "}",
      ]),
    ]);
    body = `
  let kv0 = wg.x * 8u + lane;  // this lane's x texel column (in-columns 4kv … 4kv + 3)
  let kv = min(kv0, ${IN4 - 1}u);
  ${colBlock}
  ${I.flatMap((c) => J.map((j) => `var a${c}_${j} = vec4f(0.0);`)).join(" ")}
  for (var k0 = 0u; k0 < u.rows; k0 += 8u) {
${step}
  }
  if (kv0 < ${IN4}u) {
${
      I.flatMap((c) =>
        J.map((j) =>
          `    if (jb + ${j}u < ${R4}u) { OUT[(4u * kv0 + ${c}u) * ${R4}u + jb + ${j}u] = a${c}_${j}; }`
        )
      ).join("\n")
    }
  }`;
  }
  const wgSize = kind === "gradA" ? 8 : 32;
  s = kernel({
    name: `lora_${kind}_sg`,
    inputs: { P1: "texture", Q1: "texture", P2: "texture", Q2: "texture", C: "vec4f" },
    outputs: { OUT: "vec4f" },
    uniforms: LORA_U,
    decls: [
      HEAD,
      ...["P1", "Q1", "P2", "Q2"].map((t) => texelLoadFn(`ld${t}`, t)),
    ].join("\n"),
    body: `@compute @workgroup_size(${wgSize})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {${body}
}`,
  });
  specs.set(key, s);
  return s;
}

/** Workgroups of the subgroup family (see sgSpec). */
function sgGrid(kind: Kind, rows: number, inDim: number, r: number): [number, number, number] {
  const cb = Math.ceil(r / 16), rb = Math.ceil(rows / 128);
  if (kind === "down") return [rb, cb, 1];
  if (kind === "up") return [Math.ceil(inDim / 16), rb, 1];
  return [Math.ceil(inDim / 32), cb, 1];
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
  const sg = rt.isCpuAdapter && rt.hasSubgroups && rt.subgroupSize === 8 && inDim % 4 === 0 &&
    r % 4 === 0 && operands.every((t) => rt.texelsFit(t.size));
  if (sg) {
    // Stage the distinct operands, then dispatch: the views are bound before any restaging.
    const views = stageTexels(rt, operands);
    // Without C the binding still needs a buffer other than the output (no aliasing).
    sgSpec(kind, inDim, r, flags).run(
      rt,
      [...views, acc ?? p1.p, out],
      u,
      sgGrid(kind, rows, inDim, r),
    );
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
