/**
 * Register-blocked tiled matmul for discrete GPUs (the "tiled" family).
 *
 * A workgroup computes a BM×BN tile of C: TX×TY threads, each a TM×TN register block held as
 * vec4 accumulators (TM rows × TN/4 column quads). K advances in BK-wide slices staged in
 * workgroup memory — As (BM, BK/4) with vec4s along K, Bs (BK, BN/4) with vec4s along N —
 * double-buffered: the next slice is loaded from global memory into registers while the
 * current one is multiplied, then stored into the other buffer (one barrier per slice).
 * Per 4 k a thread reads TM + 4·TN/4 vec4s of workgroup memory for 4·TM·TN FMAs (8×8: 16
 * vec4 reads per 256 FMAs).
 *
 * Each thread's rows (and columns) come in groups of 4 spaced BM/(TM/4) apart rather than
 * TM adjacent rows: a warp's vec4 reads of Bs then cover consecutive addresses, and its
 * reads of As are broadcasts.
 *
 * Global loads: an operand stored along its tile's vec4 axis (A (M, K), B (K, N)) is read
 * as vec4s when that axis is a multiple of 4 (the `vecA`/`vecB` pipeline keys); otherwise
 * (odd sizes, transposed operands) four bounds-checked scalar loads fill each vec4, laid
 * out so a warp still reads consecutive addresses. Every load is bounds-checked (zero
 * outside), every store guarded, so any shape and any transpose of either operand runs.
 *
 * Shape independence: m, n, k, batch strides, the K split and the epilogue come from the
 * uniform block (matmul_params.ts); a pipeline is keyed by (tile config, transA, transB,
 * vecA, vecB) only, its spec built once and found by a small integer key.
 *
 * Split-K: z = batch·splits + split; split s covers k ∈ [s·kChunk, (s+1)·kChunk) and writes
 * its raw sums to a workspace (batch, splits, M, N) that matmul_splitk.ts reduces with the
 * epilogue. With splits = 1 the same pipeline writes C with the epilogue directly.
 *
 * Workgroup memory: 2·BK·(BM + BN)·4 bytes = 16 KiB for the large tile — the WebGPU default
 * limit, so it needs no raised limits.
 *
 * Not yet measured on a discrete GPU (none was available): the tile sizes and the split
 * heuristic below are starting points; on lavapipe the family runs (tests force it) but is
 * several times slower than the subgroup family.
 */
import type { KernelSpec } from "../runtime/kernel.ts";
import type { MatmulShape } from "./matmul.ts";
import { epilogueWgsl, paramsWgsl } from "./matmul_params.ts";

export interface TileConfig {
  /** Index in CONFIGS (part of the pipeline key). */
  readonly id: number;
  readonly bm: number;
  readonly bn: number;
  readonly bk: number;
  /** Register block per thread (multiples of 4). */
  readonly tm: number;
  readonly tn: number;
}

/** Large tiles for big outputs: 256 threads, 8×8 outputs each. */
export const TILE_L: TileConfig = { id: 0, bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 };
/** Small tiles when the large ones would leave the GPU idle: 128 threads, 4×4 each. */
export const TILE_S: TileConfig = { id: 1, bm: 64, bn: 32, bk: 16, tm: 4, tn: 4 };
const CONFIGS = [TILE_L, TILE_S];

/**
 * Workgroups that roughly fill a discrete GPU (an H100 has 132 SMs, two of these
 * workgroups each). Below it the small tiles are used, then K is split. Not yet tuned on
 * hardware: a starting point.
 */
const FILL = 256;
/** Fewest k a split handles (shorter splits spend more on the reduction than they save). */
const MIN_SPLIT_K = 128;
const MAX_SPLITS = 64;
/** Workspace cap for split-K partial sums (floats). */
const MAX_WORKSPACE = 1 << 24;

export interface TiledPlan {
  readonly cfg: TileConfig;
  readonly vecA: boolean;
  readonly vecB: boolean;
  readonly splits: number;
  readonly kChunk: number;
  readonly grid: [number, number, number];
}

const tiles = (c: TileConfig, s: MatmulShape) =>
  Math.ceil(s.m / c.bm) * Math.ceil(s.n / c.bn) * s.batch;

/**
 * Tile config, load widths and K split for a shape. `splits`: force a split count (tests);
 * default: split only when the output tiles cannot fill the GPU and K is long.
 */
export function tiledPlan(
  s: MatmulShape,
  t: { transA: boolean; transB: boolean },
  splits?: number,
): TiledPlan {
  const cfg = tiles(TILE_L, s) >= FILL ? TILE_L : TILE_S;
  // vec4 loads: only for an operand stored along its tile's vec4 axis (A (M, K), B (K, N)),
  // with whole vec4 rows, and at least one (a binding of array<vec4f> is ≥ 16 bytes).
  const vecA = !t.transA && s.k % 4 === 0 && s.m * s.k > 0;
  const vecB = !t.transB && s.n % 4 === 0 && s.k * s.n > 0;
  const wgs = tiles(cfg, s);
  let want = splits ??
    (wgs > 0 && wgs < FILL && s.k >= 2 * MIN_SPLIT_K
      ? Math.min(Math.ceil(FILL / wgs), Math.floor(s.k / MIN_SPLIT_K), MAX_SPLITS)
      : 1);
  want = Math.max(1, Math.min(want, Math.ceil(s.k / cfg.bk) || 1));
  if (splits === undefined) {
    if (want * s.batch * s.m * s.n > MAX_WORKSPACE) want = 1;
    want = Math.max(1, Math.min(want, Math.floor(65535 / s.batch))); // z = batch·splits
  }
  // Chunks are whole BK slices, so a vec4 never straddles two splits.
  const kChunk = Math.max(cfg.bk, Math.ceil(s.k / want / cfg.bk) * cfg.bk);
  const real = Math.max(1, Math.ceil(s.k / kChunk));
  if (s.batch * real > 65535) {
    throw new RangeError(`tiled matmul: batch ${s.batch} × ${real} splits > 65535 workgroups`);
  }
  return {
    cfg,
    vecA,
    vecB,
    splits: real,
    kChunk,
    grid: [Math.ceil(s.n / cfg.bn), Math.ceil(s.m / cfg.bm), s.batch * real],
  };
}

const specs: (KernelSpec | undefined)[] = [];

/** The pipeline for a plan and transposes: built once, found by a 5-bit key. */
export function tiledSpec(plan: TiledPlan, t: { transA: boolean; transB: boolean }): KernelSpec {
  const key = plan.cfg.id * 16 + (t.transA ? 8 : 0) + (t.transB ? 4 : 0) +
    (plan.vecA ? 2 : 0) + (plan.vecB ? 1 : 0);
  return specs[key] ??= {
    name: "matmul_tiled",
    code: tiledSource(CONFIGS[plan.cfg.id], t.transA, t.transB, plan.vecA, plan.vecB),
    bindings: ["read", "read", "read", "read_write", "uniform"],
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const comp = ["x", "y", "z", "w"];

/**
 * One operand's slice loader. Its tile holds O × V vec4 slots (A: BM rows × BK/4 k-quads,
 * vec4 along K; B: BK k-rows × BN/4 column quads, vec4 along N). A thread fills whole slots
 * — never single components of a slot another thread writes, so no backend can turn the
 * store into a racing read-modify-write.
 *
 * `along`: the operand is stored contiguous along the slot's vec4 axis (A not transposed,
 * B not transposed). Then a slot is one vec4 load (`vec`: that axis is a multiple of 4) or
 * four scalar loads, and the vec4 axis varies fastest across threads. Otherwise (a
 * transposed operand) a slot is four scalar loads one row apart and the other axis varies
 * fastest, so a warp's loads still read consecutive addresses.
 */
interface Operand {
  readonly name: "A" | "B";
  readonly slotsO: number;
  readonly slotsV: number;
  readonly along: boolean;
  readonly vec: boolean;
  /** WGSL: the global (m-or-n index, k index) of component `c` of slot (o, v) in slice kt. */
  readonly at: (o: string, v: string, c: number, kt: string) => { mn: string; k: string };
  /** WGSL: the element's index in the operand, and the m-or-n extent. */
  readonly index: (mn: string, k: string) => string;
  readonly extent: string;
}

function loader(o: Operand, threads: number) {
  const per = (o.slotsO * o.slotsV) / threads; // slots each thread fills per slice
  const x = o.name.toLowerCase(), S = `${o.name}s`, slots = o.slotsO * o.slotsV;
  // Per-thread slot coordinates, fixed for the whole loop.
  const coords = range(per).map((q) => {
    const e = `(t + ${q * threads}u)`;
    return o.along
      ? `let ${x}o${q} = ${e} / ${o.slotsV}u; let ${x}q${q} = ${e} % ${o.slotsV}u;`
      : `let ${x}o${q} = ${e} % ${o.slotsO}u; let ${x}q${q} = ${e} / ${o.slotsO}u;`;
  }).join("\n  ");
  const load = (kt: string) =>
    range(per).map((q) => {
      const el = (c: number) => o.at(`${x}o${q}`, `${x}q${q}`, c, kt);
      if (o.vec) {
        // Aligned: the four components are in or out of bounds together.
        const { mn, k } = el(0);
        return `${x}v${q} = vec4f(0.0);
      if (${mn} < ${o.extent} && ${k} < kEnd) { ${x}v${q} = ${o.name}[(${o.index(mn, k)}) / 4u]; }`;
      }
      return range(4).map((c) => {
        const { mn, k } = el(c);
        return `${x}v${q}.${comp[c]} = select(0.0, ${o.name}[min(${
          o.index(mn, k)
        }, ${o.name}_last)], ${mn} < ${o.extent} && ${k} < kEnd);`;
      }).join("\n      ");
    }).join("\n      ");
  const store = (buf: string) =>
    range(per).map((q) =>
      `${S}[${buf} * ${slots}u + ${x}o${q} * ${o.slotsV}u + ${x}q${q}] = ${x}v${q};`
    ).join("\n      ");
  const decl = range(per).map((q) => `var ${x}v${q}: vec4f;`).join(" ");
  return { coords, load, store, decl };
}

/** WGSL of one pipeline. */
export function tiledSource(
  c: TileConfig,
  transA: boolean,
  transB: boolean,
  vecA: boolean,
  vecB: boolean,
): string {
  const tx = c.bn / c.tn, ty = c.bm / c.tm, threads = tx * ty;
  const gm = c.tm / 4, gn = c.tn / 4; // vec4 groups of rows / columns per thread
  const bk4 = c.bk / 4, bn4 = c.bn / 4;
  const A = loader({
    name: "A",
    slotsO: c.bm,
    slotsV: bk4,
    along: !transA,
    vec: vecA && !transA,
    at: (o, v, i, kt) => ({ mn: `r0 + ${o}`, k: `${kt} + ${v} * 4u + ${i}u` }),
    index: (mn, k) => (transA ? `aBase + (${k}) * p.m + ${mn}` : `aBase + (${mn}) * p.k + ${k}`),
    extent: "p.m",
  }, threads);
  const B = loader({
    name: "B",
    slotsO: c.bk,
    slotsV: bn4,
    along: !transB,
    vec: vecB && !transB,
    at: (o, v, i, kt) => ({ mn: `c0 + ${v} * 4u + ${i}u`, k: `${kt} + ${o}` }),
    index: (mn, k) => (transB ? `bBase + (${mn}) * p.k + ${k}` : `bBase + (${k}) * p.n + ${mn}`),
    extent: "p.n",
  }, threads);
  // Thread's rows: g·(BM/gm) + ty·4 + i; columns h·(BN/gn) + tx·4 + j (i, j < 4).
  const rowOff = (r: number) => Math.floor(r / 4) * (c.bm / gm) + (r % 4);
  const accs = range(c.tm).flatMap((r) => range(gn).map((h) => `acc${r}_${h}`));
  let compute = "";
  for (let kq = 0; kq < bk4; kq++) {
    compute += "    {\n";
    for (let r = 0; r < c.tm; r++) {
      compute += `      let a${r} = As[aRow + ${rowOff(r) * bk4 + kq}u];\n`;
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let h = 0; h < gn; h++) {
        compute += `      let b${kk}_${h} = Bs[bCol + ${(kq * 4 + kk) * bn4 + h * tx}u];\n`;
      }
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let r = 0; r < c.tm; r++) {
        for (let h = 0; h < gn; h++) {
          compute += `      acc${r}_${h} = fma(vec4f(a${r}.${
            comp[kk]
          }), b${kk}_${h}, acc${r}_${h});\n`;
        }
      }
    }
    compute += "    }\n";
  }
  let epilogue = "";
  for (let r = 0; r < c.tm; r++) {
    epilogue += `  {\n    let row = r0 + ${rowOff(r)}u + ty * 4u;\n    if (row < p.m) {\n`;
    for (let h = 0; h < gn; h++) {
      for (let j = 0; j < 4; j++) {
        epilogue += `      { let col = c0 + ${h * (c.bn / gn) + j}u + tx * 4u;
      if (col < p.n) {
      let idx = cBase + row * p.n + col;
      ${epilogueWgsl(`acc${r}_${h}.${comp[j]}`, "idx", "col")}
      } }\n`;
      }
    }
    epilogue += "    }\n  }\n";
  }
  const arr = (v: boolean) => (v ? "array<vec4f>" : "array<f32>");
  const aVec = vecA && !transA, bVec = vecB && !transB;
  return /* wgsl */ `// tiled matmul ${c.bm}x${c.bn}x${c.bk}, ${c.tm}x${c.tn} per thread; A${
    transA ? "ᵀ" : ""
  } B${transB ? "ᵀ" : ""}; vec4 loads A ${aVec} B ${bVec}
${paramsWgsl(4)}
@group(0) @binding(0) var<storage, read> A: ${arr(aVec)};
@group(0) @binding(1) var<storage, read> B: ${arr(bVec)};
@group(0) @binding(2) var<storage, read> BIAS: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<vec4f, ${2 * c.bm * bk4}>;  // 2 × (BM, BK/4): vec4 along K
var<workgroup> Bs: array<vec4f, ${2 * c.bk * bn4}>;  // 2 × (BK, BN/4): vec4 along N
@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) t: u32) {
  let split = wg.z % p.splits;
  let bz = wg.z / p.splits;
  let r0 = wg.y * ${c.bm}u;
  let c0 = wg.x * ${c.bn}u;
  let aBase = bz * p.strideA;
  let bBase = bz * p.strideB;
  let cBase = wg.z * p.m * p.n;  // = bz·M·N without a split; the workspace slot with one
  ${aVec ? "" : "let A_last = arrayLength(&A) - 1u;  // a masked load's (clamped) address"}
  ${bVec ? "" : "let B_last = arrayLength(&B) - 1u;"}
  let kBeg = split * p.kChunk;
  let kEnd = min(p.k, kBeg + p.kChunk);
  let slices = select(0u, (kEnd - kBeg + ${c.bk - 1}u) / ${c.bk}u, kEnd > kBeg);
  let tx = t % ${tx}u;
  let ty = t / ${tx}u;
  ${A.coords}
  ${B.coords}
  ${A.decl}
  ${B.decl}
  ${accs.map((a) => `var ${a} = vec4f(0.0);`).join("\n  ")}
  if (slices > 0u) {
      ${A.load("kBeg")}
      ${B.load("kBeg")}
      ${A.store("0u")}
      ${B.store("0u")}
  }
  workgroupBarrier();
  for (var s = 0u; s < slices; s++) {
    let cur = s & 1u;
    let more = s + 1u < slices;
    if (more) {
      let kt = kBeg + (s + 1u) * ${c.bk}u;
      ${A.load("kt")}
      ${B.load("kt")}
    }
    let aRow = cur * ${c.bm * bk4}u + ty * ${4 * bk4}u;
    let bCol = cur * ${c.bk * bn4}u + tx;
${compute}
    if (more) {
      ${A.store("(cur ^ 1u)")}
      ${B.store("(cur ^ 1u)")}
    }
    workgroupBarrier();
  }
${epilogue}
}`;
}
