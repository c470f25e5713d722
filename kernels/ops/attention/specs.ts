/**
 * One definition per attention kernel (AttnKernel), turned into a KernelSpec of one family:
 * plain (any adapter), 8-lane subgroup (CPU adapters, its vec4 inputs optionally read as
 * texels) or flash (discrete GPUs: the other side staged in workgroup-memory tiles,
 * flash.ts). All families share the bindings, the own-row set-up and the stores; only the
 * prologue's form and the loop over the other side differ.
 */
import type { KernelSpec } from "../../runtime/kernel.ts";
import {
  FLASH_MAIN,
  flashColLoop,
  flashDecls,
  flashProlog,
  flashRowLoop,
  flashRows,
  type FlashTile,
} from "./flash.ts";
import { SG_MAIN, type SgBlock, sgLoop } from "./subgroup.ts";
import {
  bindings,
  type BindList,
  COL,
  COL_LOOP,
  FLAGS_LET,
  HEAD,
  MAIN,
  ROW,
  ROW_LOOP,
  spec,
  viaTexels,
} from "./wgsl.ts";

export interface AttnKernel {
  readonly name: string;
  /** "row": one lane per query row (loops over keys); "col": one lane per key row. */
  readonly side: "row" | "col";
  readonly list: BindList;
  /** Declare hq / hk / hv / hg (which tangents are bound). */
  readonly tangents?: boolean;
  /** This lane's own-row set-up (after the prologue, before the loop). */
  readonly pre: string;
  /** Plain family: body of ROW_LOOP / COL_LOOP (one pair per iteration). */
  readonly plain: string;
  /** Subgroup family: the block of 8 pairs. */
  readonly sg: SgBlock;
  /** Flash family: what the tiles stage (and the forward's own tile code). */
  readonly flash: FlashTile;
  /** After the loop: the stores (lanes past the end return first). */
  readonly post: string;
}

const body = (k: AttnKernel, main: string, loop: string) =>
  `${main}${k.side === "row" ? ROW : COL}${k.tangents ? FLAGS_LET : ""}${k.pre}
  ${loop}
${k.post}
}`;

export function plainSpec(k: AttnKernel, D: number): KernelSpec {
  return spec(k.name, D, () => {
    const b = bindings(k.list);
    const loop = k.side === "row" ? ROW_LOOP(k.plain) : COL_LOOP(k.plain);
    return {
      name: k.name,
      bindings: b.kinds,
      code: `${HEAD(D)}\n${b.wgsl}\n${body(k, MAIN, loop)}`,
    };
  });
}

/** The subgroup variant; with `texels`, its read-only vec4 inputs are textures. */
export function sgSpec(k: AttnKernel, D: number, texels: boolean): KernelSpec {
  const full = `${k.name}_${texels ? "tex" : "sg"}`;
  return spec(full, D, () => {
    const b = bindings(k.list, texels);
    const names = k.list.filter((_, i) => b.kinds[i] === "texture").map(([n]) => n);
    // HEAD's helpers (segOk) read SEG only, which stays a storage buffer.
    return {
      name: full,
      bindings: b.kinds,
      code: `${HEAD(D)}\n${b.wgsl}\n${viaTexels(body(k, SG_MAIN, sgLoop(k.side, k.sg)), names)}`,
    };
  });
}

/**
 * The flash variant, or undefined where not one tile row of its staged arrays fits the
 * workgroup-memory budget at this D (flash.ts).
 */
export function flashSpec(k: AttnKernel, D: number): KernelSpec | undefined {
  const bc = flashRows(k.flash.stage.length, D, k.side === "col");
  if (bc < 1) return undefined;
  const name = `${k.name}_flash`;
  return spec(name, D, () => {
    const b = bindings(k.list);
    const loop = k.side === "row" ? flashRowLoop(k.flash, k.plain) : flashColLoop(k.flash, k.plain);
    return {
      name,
      bindings: b.kinds,
      code: `${HEAD(D)}
const BC = ${bc}u;
${b.wgsl}
${flashDecls(k.flash, k.side, bc)}
${FLASH_MAIN}${flashProlog(k.side)}${k.tangents ? FLAGS_LET : ""}${k.pre}
  ${loop}
${k.post}
}`,
    };
  });
}
