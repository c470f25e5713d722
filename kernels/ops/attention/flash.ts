/**
 * The flash family, for GPUs (FlashAttention-2 style; "auto" on every non-CPU adapter). A
 * workgroup owns a tile of WG = 64 own-side rows of one (b, head) — query rows in row
 * kernels, key rows in column kernels — one thread per row holding its row (and
 * accumulators) in registers. The other side streams through workgroup memory in tiles of
 * BC rows: every thread of the workgroup stages a slice of the tile with coalesced loads
 * (row-major rows of one head are contiguous), a barrier, then each thread runs the tile's
 * pairs reading the staged rows (the same address for every thread: a broadcast, no bank
 * conflicts). Each staged row is read from global memory once per workgroup instead of once
 * per thread.
 *
 *  - forward (row): K/V tiles, online softmax with one max / rescale per tile (not per key),
 *    normalised once at the end; writes O and L as every family does;
 *  - backward: gQ from a row kernel over K/V tiles; gK / gV from a column kernel that owns a
 *    K/V tile and iterates over the query tiles (Q, gO and the row statistics ST = (L, Δ, …)
 *    staged) of every query head of its kv group — no atomics;
 *  - both tangent kernels: the same two shapes, staging the tangents that are bound.
 * The maths per pair is the plain family's own body (specs.ts), with the staged arrays
 * rewritten to their workgroup copies, except the forward's per-tile softmax (flash.tile).
 *
 * Tile rows BC: as many as fit FLASH_BYTES = 16 KiB (WebGPU's default
 * maxComputeWorkgroupStorageSize) for the kernel's staged arrays at this D, at most 32 (the
 * forward keeps a 32-bit visibility mask per tile), rounded down to a multiple of 8. A kernel
 * whose single row does not fit (the tangents' four staged arrays at D > 1020) has no flash
 * variant (launch.ts runs plain instead). Untuned: nothing here has been timed on a GPU.
 */
import { ARGS, forD, WG } from "./wgsl.ts";

/** One array of the other side staged per tile (only when `cond`, a uniform flag, holds). */
export interface FlashStage {
  readonly arr: string;
  readonly cond?: string;
}
/** How a kernel runs in the flash family. */
export interface FlashTile {
  /** The other side's arrays the pair body reads (row: key side; column: query side). */
  readonly stage: readonly FlashStage[];
  /**
   * Code run once per staged tile instead of the per-pair loop over the plain body; reads
   * `ARR_w[jj * NV + d]` for pair jj (key j0 + jj; rows jj ≥ nt are staged as zeros).
   */
  readonly tile?: string;
}

/** Workgroup-memory budget of one flash kernel (bytes). */
export const FLASH_BYTES = 16384;

/**
 * Tile rows for a kernel staging `arrays` arrays of D floats (+16 B of ST per row in column
 * kernels); 0 when not even one row fits.
 */
export function flashRows(arrays: number, D: number, col: boolean): number {
  const rowBytes = arrays * D * 4 + (col ? 16 : 0);
  let n = Math.min(32, Math.floor(FLASH_BYTES / rowBytes));
  if (n >= 8) n -= n % 8;
  return n;
}

export const FLASH_MAIN = `@compute @workgroup_size(${WG})
fn main(${ARGS}) {`;

/**
 * Row-kernel prologue, defining the names ROW (wgsl.ts) does. Unlike ROW, b and the key base
 * kb are derived from the workgroup's (b, h) alone, so WGSL's uniformity analysis sees them
 * (and so the tile loop's bounds) as workgroup-uniform: the loop holds barriers.
 */
const ROW_PRO = `
  let bh = wid.y + wid.z * nwg.y;
  let bhc = min(bh, u.n - 1u);
  let t0 = wid.x * ${WG}u;
  let live = t0 + lid < u.T && bh < u.n;
  let t = min(t0 + lid, u.T - 1u);
  let id = bhc * u.T + t;
  let b = bhc / u.H;
  let kb = (b * u.Hkv + bhc % u.H / u.grp) * u.S;
  let qr = id * NV;
  let myEnd = keyEnd(t);
  let jEnd = keyEnd(min(t0 + ${WG - 1}u, u.T - 1u));`;

/** Column-kernel prologue (the names COL defines; b, h0 uniform as above). */
const COL_PRO = `
  let bk = wid.y + wid.z * nwg.y;
  let bkc = min(bk, u.n - 1u);
  let j0 = wid.x * ${WG}u;
  let live = j0 + lid < u.S && bk < u.n;
  let j = min(j0 + lid, u.S - 1u);
  let id = bkc * u.S + j;
  let b = bkc / u.Hkv;
  let h0 = bkc % u.Hkv * u.grp;
  let kr = id * NV;
  let myStart = queryStart(j);
  let i0 = queryStart(j0);`;

export const flashProlog = (side: "row" | "col"): string => side === "row" ? ROW_PRO : COL_PRO;

/** `NAME[` → `NAME_w[` for each staged name (the body's reads of the other side). */
export function toStaged(code: string, names: readonly string[]): string {
  for (const n of names) code = code.replace(new RegExp(`\\b${n}\\[`, "g"), `${n}_w[`);
  return code;
}

/** Workgroup arrays of a kernel: one VT slice per staged array, plus ST in column kernels. */
export function flashDecls(t: FlashTile, side: "row" | "col", bc: number): string {
  const arrs = t.stage.map((s) => `var<workgroup> ${s.arr}_w: array<VT, ${bc}u * NV>;`);
  if (side === "col") arrs.push(`var<workgroup> ST_w: array<vec4f, ${bc}>;`);
  return arrs.join("\n");
}

/**
 * Copy rows [base, base + nt) of each staged array into its workgroup slice (rows past nt
 * read as zero, though no pair reads them). `base` is a row index of the staged arrays.
 */
const stageCode = (t: FlashTile, base: string): string =>
  t.stage.map((s) => {
    const loop = `for (var e = lid; e < BC * NV; e += ${WG}u) {
        let src = (${base}) * NV + min(e, nt * NV - 1u);
        ${s.arr}_w[e] = select(VT(0.0), ${s.arr}[src], e < nt * NV);
      }`;
    return s.cond ? `if (${s.cond}) { ${loop} }` : loop;
  }).join("\n      ");

/**
 * Row kernels: tiles of keys [j0, j0 + nt) up to the workgroup's last end; the pair body
 * sees vis (this row sees key j) and kr (key jj's first slot in the staged tile).
 */
export function flashRowLoop(t: FlashTile, plain: string): string {
  const names = t.stage.map((s) => s.arr);
  const pairs = t.tile ?? `for (var jj = 0u; jj < nt; jj++) {
      let j = j0 + jj;
      let vis = j < myEnd && segOk(b, t, j);
      let kr = jj * NV;${toStaged(plain, names)}
    }`;
  return `for (var j0 = 0u; j0 < jEnd; j0 += BC) {
    let nt = min(BC, jEnd - j0);
    workgroupBarrier();
      ${stageCode(t, "kb + j0")}
    workgroupBarrier();
    ${pairs}
  }`;
}

/**
 * Column kernels: every query head of the kv group, tiles of queries [i0t, i0t + nt) from the
 * workgroup's first start, with their row statistics; the pair body sees vis, qr (query ii's
 * first staged slot) and st.
 */
export function flashColLoop(t: FlashTile, plain: string): string {
  const names = t.stage.map((s) => s.arr);
  return `for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i0t = i0; i0t < u.T; i0t += BC) {
      let nt = min(BC, u.T - i0t);
      workgroupBarrier();
      ${stageCode(t, "rb + i0t")}
      for (var e = lid; e < BC; e += ${WG}u) { ST_w[e] = ST[rb + i0t + min(e, nt - 1u)]; }
      workgroupBarrier();
      for (var ii = 0u; ii < nt; ii++) {
        let i = i0t + ii;
        let vis = i >= myStart && segOk(b, i, j);
        let qr = ii * NV;
        let st = ST_w[ii];${toStaged(plain, names)}
      }
    }
  }`;
}

/**
 * The forward's tile (FWD.flash.tile): the tile's scores into registers with their
 * visibility bits, one new running max, one rescale of (l, acc), then the tile's
 * probabilities times V. Rows that have seen no visible key keep m = −FLT_MAX, l = 0. The
 * pair loops run to the constant BC (not nt) so that a GPU compiler can unroll them and keep
 * sc in registers; pairs past nt are keys j ≥ jEnd ≥ myEnd, invisible (their staged rows are
 * zeros).
 */
export const FWD_TILE = `var sc: array<f32, BC>;
    var vm = 0u;
    var mx = m;
    for (var jj = 0u; jj < BC; jj++) {
      let j = j0 + jj;
      var s: f32 = 0.0;
      ${forD("s += vdot(q[d], K_w[jj * NV + d]);")}
      let vis = j < myEnd && segOk(b, t, j);
      vm |= select(0u, 1u << jj, vis);
      mx = select(mx, max(mx, s), vis);
      sc[jj] = s;
    }
    let cr = exp(m - mx);
    l *= cr;
    ${forD("acc[d] *= cr;")}
    for (var jj = 0u; jj < BC; jj++) {
      let p = select(0.0, exp(sc[jj] - mx), (vm & (1u << jj)) != 0u);
      l += p;
      ${forD("acc[d] += p * Vv_w[jj * NV + d];")}
    }
    m = mx;`;
