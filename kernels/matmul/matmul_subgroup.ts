/**
 * Matmul for 8-lane subgroup CPU adapters (Mesa lavapipe/llvmpipe). llvmpipe runs the 8
 * lanes of a subgroup as one AVX2 register, so the design avoids what is slow there
 * (shared memory, barriers, many storage loads per FMA):
 *  - no shared memory or barriers; each lane owns RM rows of C and a strip of columns;
 *  - B is loaded once per subgroup — each lane loads a different k-row (or k-vector) —
 *    and handed to the other lanes with `subgroupBroadcast` (a register permute);
 *  - sizes are baked in as constants, one pipeline per shape (unlike the discrete-GPU
 *    kernels: measured on lavapipe, reading m, n, k from a uniform block made small-K
 *    products up to 2× slower, e.g. 1024×128×352 12 vs 21 GFLOP/s; baking K alone
 *    recovered most of it). Specs are cached by a short shape key, so a repeated shape
 *    neither rebuilds its source nor compiles;
 *  - edges are handled with clamped loads (branch-free, so the subgroup stays uniform) and
 *    guarded stores;
 *  - A and B are read through ldA/ldB from storage buffers or, faster on Mesa 22.3's
 *    lavapipe, from staged texels (`Source`).
 * Variants: NN (A·B), TN (Aᵀ·B), NT (A·Bᵀ); batched over workgroup z; epilogue
 * C = alpha·acc (+ bias) (+ C). Alignment needs: NN K%4 = N%4 = 0; TN M%4 = N%4 = 0;
 * NT K%4 = 0 (any N). Other shapes take the naive kernel (matmul.ts chooses).
 */
import type { KernelSpec } from "../runtime/kernel.ts";
import type { MatmulShape } from "./matmul.ts";
import { texelLoadFn } from "../runtime/texels.ts";
import type { Epilogue } from "./matmul_params.ts";

export interface SgConfig {
  readonly rm: number; // rows per lane
  readonly cn: number; // vec4 column groups per subgroup (NT: 4·cn scalar columns)
  readonly s: number; // subgroups per workgroup
}

export const SG_DEFAULT: SgConfig = { rm: 4, cn: 4, s: 4 };
const SG_S2: SgConfig = { ...SG_DEFAULT, s: 2 };
const SG_S1: SgConfig = { ...SG_DEFAULT, s: 1 };

/**
 * The config for a shape: four subgroups per workgroup (128 rows) unless M leaves a ragged
 * last row of workgroups, then fewer — no shared memory is used, so smaller workgroups only
 * refine the grid. At M = 288 (the 256-token meta-step: a segment and its prompt) four
 * subgroups compute 384 rows, one subgroup exactly 288; on lavapipe (2026-12-07) s = 1 ran
 * 10–25% faster at 288×128×{128, 352, 6144} (`deno task perf matmul_f32_288x128x352
 * matmul_f32_nt_288x128x6144`).
 */
export function sgConfigFor(v: Variant, s: MatmulShape): SgConfig {
  const rows = 8 * (v === "tn" ? 4 : SG_DEFAULT.rm); // rows per subgroup
  if (s.m % (4 * rows) === 0 || s.m > 64 * rows) return SG_DEFAULT;
  return s.m % (2 * rows) === 0 ? SG_S2 : SG_S1;
}

export type Variant = "nn" | "tn" | "nt";

export type { Epilogue } from "./matmul_params.ts";

export function sgSupports(v: Variant, s: MatmulShape): boolean {
  if (v === "nn") return s.k % 4 === 0 && s.n % 4 === 0;
  if (v === "tn") return s.m % 4 === 0 && s.n % 4 === 0;
  return s.k % 4 === 0;
}

/** Workgroup counts for a variant, shape and config. */
export function sgDispatch(v: Variant, s: MatmulShape, c: SgConfig): [number, number, number] {
  const rowsPerWg = 8 * (v === "tn" ? 4 : c.rm) * c.s;
  const colsPerWg = 4 * c.cn;
  return [Math.ceil(s.n / colsPerWg), Math.ceil(s.m / rowsPerWg), s.batch];
}

const f = (x: number) => (Number.isInteger(x) ? `${x}.0` : x.toExponential());
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const comp = ["x", "y", "z", "w"];

/**
 * Where A and B are read from: storage buffers, or rgba32float textures staged with
 * `rt.texels` (kernels/runtime/texels.ts: texel loads are vector gathers on lavapipe,
 * storage loads a per-lane loop). Same code otherwise: loads go through ldA/ldB.
 */
export type Source = "storage" | "texture";

/** Specs by (config, shape, variant, epilogue, source): built once per key. */
const specs = new WeakMap<SgConfig, Map<string, KernelSpec>>();

export function sgMatmulSpec(
  v: Variant,
  s: MatmulShape,
  ep: Epilogue,
  c: SgConfig = SG_DEFAULT,
  src: Source = "storage",
): KernelSpec {
  let byKey = specs.get(c);
  if (!byKey) specs.set(c, byKey = new Map());
  // A short key (not the WGSL text) finds the spec; the runtime then finds its pipeline by
  // the spec object.
  const key = `${v}${src === "texture" ? "t" : "s"}${s.m},${s.n},${s.k},${+s.batchB}` +
    `,${ep.alpha},${+ep.bias}${+ep.accumulate}`;
  let spec = byKey.get(key);
  if (!spec) byKey.set(key, spec = buildSpec(v, s, ep, c, src));
  return spec;
}

function buildSpec(
  v: Variant,
  s: MatmulShape,
  ep: Epilogue,
  c: SgConfig,
  src: Source,
): KernelSpec {
  if (!sgSupports(v, s)) {
    throw new RangeError(`subgroup matmul ${v} does not support ${JSON.stringify(s)}`);
  }
  const code = v === "nn" ? nn(s, ep, c, src) : v === "tn" ? tn(s, ep, c, src) : nt(s, ep, c, src);
  const operand = src === "texture" ? "texture" : "read";
  return {
    name: `matmul_${src === "texture" ? "tex" : "sg"}_${v}`,
    detail: `${s.m}x${s.n}x${s.k}${s.batch > 1 ? ` ×${s.batch}` : ""}`,
    code,
    bindings: [operand, operand, "read", "read_write"],
  };
}

function header(scalarC: boolean, wg: number, src: Source): string {
  const t = scalarC ? "f32" : "vec4f";
  const operands = src === "texture"
    ? `@group(0) @binding(0) var A: texture_2d<f32>;
@group(0) @binding(1) var B: texture_2d<f32>;
${texelLoadFn("ldA", "A")}
${texelLoadFn("ldB", "B")}`
    : `@group(0) @binding(0) var<storage, read> A: array<vec4f>;
@group(0) @binding(1) var<storage, read> B: array<vec4f>;
fn ldA(i: u32) -> vec4f { return A[i]; }
fn ldB(i: u32) -> vec4f { return B[i]; }`;
  return `${operands}
@group(0) @binding(2) var<storage, read> BIAS: array<${t}>;
@group(0) @binding(3) var<storage, read_write> C: array<${t}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
  let s = li / 8u;
  let bz = wg.z;`;
}

function epilogue(ep: Epilogue, acc: string, idx: string, col: string): string {
  let e = `${acc} * ${f(ep.alpha)}`;
  if (ep.bias) e += ` + BIAS[${col}]`;
  if (ep.accumulate) e += ` + C[${idx}]`;
  return `C[${idx}] = ${e};`;
}

/** A (M,K) · B (K,N): lane owns rows row0 + 8r; B row k0+lane loaded per lane, broadcast. */
function nn(sh: MatmulShape, ep: Epilogue, c: SgConfig, src: Source): string {
  const { m, n, k } = sh, K4 = k / 4, N4 = n / 4;
  const R = range(c.rm), CN = range(c.cn);
  const k8 = k - (k % 8);
  const bBase = sh.batchB ? `bz * ${k * N4}u` : "0u";
  const body = (kk: number[], aOff: string) => {
    let out = "";
    for (const r of R) {
      for (let h = 0; h < Math.ceil(kk.length / 4); h++) {
        out += `let a${r}_${h} = ldA(ar${r} + ${aOff} + ${h}u);\n`;
      }
    }
    for (const q of kk) {
      for (const j of CN) {
        out += `{ let b = subgroupBroadcast(bv${j}, ${q}u);\n`;
        for (const r of R) {
          out += `acc${r}_${j} = fma(vec4f(a${r}_${q >> 2}.${comp[q & 3]}), b, acc${r}_${j});\n`;
        }
        out += "}\n";
      }
    }
    return out;
  };
  const loadB = (krow: string) =>
    CN.map((j) =>
      `let bv${j} = ldB(${bBase} + min(${krow}, ${k - 1}u) * ${N4}u + min(col4 + ${j}u, ${
        N4 - 1
      }u));`
    ).join("\n");
  return `${header(false, 8 * c.s, src)}
  let row0 = (wg.y * ${c.s}u + s) * ${8 * c.rm}u + lane;
  let col4 = wg.x * ${c.cn}u;
  ${
    R.map((r) => `let ar${r} = bz * ${m * K4}u + min(row0 + ${8 * r}u, ${m - 1}u) * ${K4}u;`).join(
      "\n  ",
    )
  }
  ${R.flatMap((r) => CN.map((j) => `var acc${r}_${j} = vec4f(0.0);`)).join("\n  ")}
  for (var k0 = 0u; k0 < ${k8}u; k0 += 8u) {
${loadB("k0 + lane")}
${body(range(8), "k0 / 4u")}
  }
  ${k % 8 === 4 ? `{\n${loadB(`${k8}u + lane`)}\n${body(range(4), `${k8 / 4}u`)}\n}` : ""}
  ${
    R.map((r) =>
      `if (row0 + ${8 * r}u < ${m}u) {\n` +
      CN.map((j) =>
        `  if (col4 + ${j}u < ${N4}u) { ${
          epilogue(
            ep,
            `acc${r}_${j}`,
            `bz * ${m * N4}u + (row0 + ${8 * r}u) * ${N4}u + col4 + ${j}u`,
            `col4 + ${j}u`,
          )
        } }`
      ).join("\n") + "\n}"
    ).join("\n  ")
  }
}`;
}

/** Aᵀ: A stored (K,M). Lane owns 4 consecutive rows (one vec4 of A per k). Any K. */
function tn(sh: MatmulShape, ep: Epilogue, cfg: SgConfig, src: Source): string {
  const c = { cn: 4, s: cfg.s }; // rows per lane are fixed at 4 (one vec4 of A per k)
  const { m, n, k } = sh, M4 = m / 4, N4 = n / 4;
  const R = range(4), CN = range(c.cn);
  const k8 = k - (k % 8), rem = k % 8;
  const bBase = sh.batchB ? `bz * ${k * N4}u` : "0u";
  const body = (kk: number[], kbase: string) => {
    let out = "";
    for (const q of kk) out += `let a${q} = ldA(abase + (${kbase} + ${q}u) * ${M4}u);\n`;
    for (const q of kk) {
      for (const j of CN) {
        out += `{ let b = subgroupBroadcast(bv${j}, ${q}u);\n`;
        for (const r of R) out += `acc${r}_${j} = fma(vec4f(a${q}.${comp[r]}), b, acc${r}_${j});\n`;
        out += "}\n";
      }
    }
    return out;
  };
  const loadB = (krow: string) =>
    CN.map((j) =>
      `let bv${j} = ldB(${bBase} + min(${krow}, ${k - 1}u) * ${N4}u + min(col4 + ${j}u, ${
        N4 - 1
      }u));`
    ).join("\n");
  return `${header(false, 8 * c.s, src)}
  let rv = (wg.y * ${c.s}u + s) * 8u + lane;  // this lane's vec4 of rows
  let row0 = rv * 4u;
  let col4 = wg.x * ${c.cn}u;
  let abase = bz * ${k * M4}u + min(rv, ${M4 - 1}u);
  ${R.flatMap((r) => CN.map((j) => `var acc${r}_${j} = vec4f(0.0);`)).join("\n  ")}
  for (var k0 = 0u; k0 < ${k8}u; k0 += 8u) {
${loadB("k0 + lane")}
${body(range(8), "k0")}
  }
  ${rem ? `{\n${loadB(`${k8}u + lane`)}\n${body(range(rem), `${k8}u`)}\n}` : ""}
  ${
    R.map((r) =>
      `if (row0 + ${r}u < ${m}u) {\n` +
      CN.map((j) =>
        `  if (col4 + ${j}u < ${N4}u) { ${
          epilogue(
            ep,
            `acc${r}_${j}`,
            `bz * ${m * N4}u + (row0 + ${r}u) * ${N4}u + col4 + ${j}u`,
            `col4 + ${j}u`,
          )
        } }`
      ).join("\n") + "\n}"
    ).join("\n  ")
  }
}`;
}

/** Bᵀ: B stored (N,K). Scalar accumulators, dot() over vec4 k-halves; any N. */
function nt(sh: MatmulShape, ep: Epilogue, c: SgConfig, src: Source): string {
  const { m, n, k } = sh, K4 = k / 4;
  const R = range(c.rm), J = range(4 * c.cn), I = range(c.cn);
  const k8 = k - (k % 8);
  const bBase = sh.batchB ? `bz * ${n * K4}u` : "0u";
  // Lane l, register i holds vec q = l + 8i: column q/2, k-half q%2.
  const loadB = (kv: string, halfFixed: boolean) =>
    I.map((i) =>
      `let bv${i} = ldB(${bBase} + min(col0 + (lane + ${8 * i}u) / 2u, ${n - 1}u) * ${K4}u + ${kv}${
        halfFixed ? "" : ` + (lane + ${8 * i}u) % 2u`
      });`
    ).join("\n");
  const body = (halves: number[], kv: string) => {
    let out = "";
    for (const r of R) {
      for (const h of halves) out += `let a${r}_${h} = ldA(ar${r} + ${kv} + ${h}u);\n`;
    }
    for (const j of J) {
      for (const h of halves) {
        const q = halves.length === 2 ? 2 * j + h : 2 * j;
        out += `{ let b = subgroupBroadcast(bv${q >> 3}, ${q & 7}u);\n`;
        for (const r of R) out += `acc${r}_${j} += dot(a${r}_${h}, b);\n`;
        out += "}\n";
      }
    }
    return out;
  };
  return `${header(true, 8 * c.s, src)}
  let row0 = (wg.y * ${c.s}u + s) * ${8 * c.rm}u + lane;
  let col0 = wg.x * ${4 * c.cn}u;
  ${
    R.map((r) => `let ar${r} = bz * ${m * K4}u + min(row0 + ${8 * r}u, ${m - 1}u) * ${K4}u;`).join(
      "\n  ",
    )
  }
  ${R.flatMap((r) => J.map((j) => `var acc${r}_${j} = 0.0;`)).join("\n  ")}
  for (var k0 = 0u; k0 < ${k8}u; k0 += 8u) {
${loadB("k0 / 4u", false)}
${body([0, 1], "k0 / 4u")}
  }
  ${k % 8 === 4 ? `{\n${loadB(`${k8 / 4}u`, true)}\n${body([0], `${k8 / 4}u`)}\n}` : ""}
  ${
    R.map((r) =>
      `if (row0 + ${8 * r}u < ${m}u) {\n` +
      J.map((j) =>
        `  if (col0 + ${j}u < ${n}u) { ${
          epilogue(
            ep,
            `acc${r}_${j}`,
            `bz * ${m * n}u + (row0 + ${8 * r}u) * ${n}u + col0 + ${j}u`,
            `col0 + ${j}u`,
          )
        } }`
      ).join("\n") + "\n}"
    ).join("\n  ")
  }
}`;
}
