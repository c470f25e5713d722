/**
 * The 8-lane subgroup family, for CPU adapters (lavapipe). There a per-lane load of a key row
 * that every lane of the subgroup needs is an 8-way gather of one address. The subgroup
 * variants instead stream the other side in blocks of 8 rows: lane l loads row (block + l)
 * — 8 distinct rows per gather — and the pair terms take each row from its lane with
 * subgroupBroadcast (a register permute). Same maths and masks as the plain kernels; the
 * block loop is workgroup-uniform (as subgroup operations need) and invisible pairs get
 * P = 0. ~6× faster than the plain family there.
 *
 * A kernel states its block as an SgBlock (what to load, which dot products, which
 * accumulations); sgLoop turns it into the block loop of a row or column kernel.
 */
import { ARGS, F, WG } from "./wgsl.ts";

export const SG_MAIN = `@compute @workgroup_size(${WG})
fn main(${ARGS}, @builtin(subgroup_invocation_id) lane: u32) {`;
/** The 8 pairs of a block (pair jj is the other side's row block + jj, held by lane jj). */
export const J8 = [0, 1, 2, 3, 4, 5, 6, 7];

/** A per-lane load of the other side's row chunk c (only when `cond`, a uniform test). */
interface SgLoad {
  readonly v: string;
  readonly arr: string;
  readonly cond?: string;
}
/** out_jj += vdot(own, other broadcast from lane jj). */
export interface SgDot {
  readonly out: string;
  readonly own: string;
  readonly other: string;
  readonly cond?: string;
}
/** acc[c] += coef_jj · (other broadcast from lane jj). */
interface SgAcc {
  readonly acc: string;
  readonly other: string;
  readonly coef: string;
  readonly cond?: string;
}
/**
 * One block of 8 pairs: phase 1 loads the other side's chunks and forms the dot products
 * for the 8 pairs; `scal(jj)` turns them into per-pair coefficients (names suffixed jj;
 * vis_jj is defined before it); `mid` runs once per block; phase 3 reloads chunks and
 * accumulates (acc scaled by `accScale` first when given).
 */
export interface SgBlock {
  readonly loads1: readonly SgLoad[];
  readonly dots: readonly SgDot[];
  readonly scal: (jj: number) => string;
  readonly mid?: string;
  readonly loads2: readonly SgLoad[];
  readonly accs: readonly SgAcc[];
  readonly accScale?: string;
}

/** One line per pair of the block. */
export const each = (line: (jj: number) => string) => J8.map(line).join("\n");
const iff = (cond: string | undefined, code: string) => (cond ? `if (${cond}) { ${code} }` : code);

/** The block's code; `idx` = element offset of this lane's chunk c, `vis(jj)` the mask. */
function sgBlock(o: SgBlock, idx: string, vis: (jj: number) => string): string {
  const outs = [...new Set(o.dots.map((d) => d.out))];
  const decl = outs.map((n) => J8.map((j) => `var ${n}${j}: f32 = 0.0;`).join(" ")).join("\n");
  const load = (l: SgLoad) =>
    `var ${l.v}: VT = VT(0.0);${l.cond ? ` if (${l.cond}) {` : ""} ${l.v} = ${l.arr}[${idx}];${
      l.cond ? " }" : ""
    }`;
  const ph1 = o.dots.map((d) =>
    iff(
      d.cond,
      `let ${d.out}_o = ${d.own};\n` +
        each((j) => `${d.out}${j} += vdot(${d.out}_o, subgroupBroadcast(${d.other}, ${j}u));`),
    )
  ).join("\n");
  const byAcc = new Map<string, SgAcc[]>();
  for (const a of o.accs) byAcc.set(a.acc, [...(byAcc.get(a.acc) ?? []), a]);
  const ph3 = [...byAcc.entries()].map(([acc, list]) => {
    const first = `var ${acc}_n = ${o.accScale ? `${acc}[c] * ${o.accScale}` : `${acc}[c]`};`;
    const terms = list.map((a) =>
      iff(a.cond, each((j) => `${acc}_n += ${a.coef}${j} * subgroupBroadcast(${a.other}, ${j}u);`))
    ).join("\n");
    return `${first}\n${terms}\n${acc}[c] = ${acc}_n;`;
  }).join("\n");
  return `
    ${decl}
    for (var c = 0u; c < NV; c++) {
      ${o.loads1.map(load).join("\n")}
      ${ph1}
    }
    ${each((j) => `${vis(j)}\n${o.scal(j)}`)}
    ${o.mid ?? ""}
    for (var c = 0u; c < NV; c++) {
      ${o.loads2.map(load).join("\n")}
      ${ph3}
    }`;
}

/** Row kernels: blocks of 8 keys; pair jj is key j0 + jj. */
const rowLoop = (body: string) => `
  let segT = select(0, SEG[b * u.T + t], has(${F.seg}u));
  for (var j0 = 0u; j0 < jEnd; j0 += 8u) {
    let jl = min(j0 + lane, u.S - 1u);
    let segL = select(0, SEG[b * u.S + jl], has(${F.seg}u));
    ${body}
  }`;
const rowVis = (jj: number) =>
  `let vis${jj} = j0 + ${jj}u < myEnd && segT == subgroupBroadcast(segL, ${jj}u);`;
/**
 * Column kernels: per query head of the group, blocks of 8 queries; pair jj is i0b + jj,
 * with its row statistics st_jj.
 */
const colLoop = (body: string) => `
  let segJ = select(0, SEG[b * u.S + j], has(${F.seg}u));
  for (var h = h0; h < h0 + u.grp; h++) {
    let rb = (b * u.H + h) * u.T;
    for (var i0b = i0; i0b < u.T; i0b += 8u) {
      let il = min(i0b + lane, u.T - 1u);
      let r = rb + il;
      let segL = select(0, SEG[b * u.T + il], has(${F.seg}u));
      let stL = ST[r];
      ${body}
    }
  }`;
const colVis = (jj: number) =>
  `let i${jj} = i0b + ${jj}u;
  let vis${jj} = i${jj} < u.T && i${jj} >= myStart && segJ == subgroupBroadcast(segL, ${jj}u);
  let st${jj} = subgroupBroadcast(stL, ${jj}u);`;

/** The whole block loop of a row or column kernel. */
export function sgLoop(side: "row" | "col", o: SgBlock): string {
  return side === "row"
    ? rowLoop(sgBlock(o, "(kb + jl) * NV + c", rowVis))
    : colLoop(sgBlock(o, "r * NV + c", colVis));
}
