/**
 * Packed parameter sets: a list of f32 tensors (e.g. PERK's 56 LoRA tensors) held in ONE GPU
 * buffer, each a view (`Tensor.subView`) at an aligned offset. Kernels that treat every
 * element alike — AdamW, its adjoint, accumulation, scaling — then run once over the whole
 * buffer instead of once per tensor (adamw.ts `adamwStepPacked`, accumulate.ts).
 *
 * Every tensor starts at a multiple of ALIGN = 64 elements (256 bytes: the storage-binding
 * alignment WebGPU guarantees to be enough, and one 64-lane workgroup), so a workgroup of a
 * packed kernel never straddles two tensors and per-tensor values (a learning rate, a
 * partial sum) are per workgroup. The gaps are zero and stay zero: a packed buffer is made
 * zeroed (or written whole by a kernel whose output is 0 where its inputs are).
 */
import type { Runtime } from "../runtime/runtime.ts";
import { numel, type Tensor } from "../runtime/tensor.ts";

/** Elements per alignment block (= a packed kernel's workgroup). */
export const PACK_BLOCK = 64;

export class PackedLayout {
  /** First element of each tensor (a multiple of `align`). */
  readonly offsets: readonly number[];
  readonly sizes: readonly number[];
  /** Elements of the packed buffer (a multiple of `align`). */
  readonly total: number;
  /** Tensor j covers blocks [blocks[j], blocks[j + 1]) of PACK_BLOCK elements (J + 1 entries). */
  readonly blocks: Uint32Array;
  /** The tensor of each block (total / PACK_BLOCK entries; a gap's block: the tensor before). */
  readonly tensorOf: Uint32Array;
  readonly key: string;

  private constructor(
    readonly shapes: readonly (readonly number[])[],
    readonly align: number,
  ) {
    let at = 0;
    const offsets: number[] = [], sizes: number[] = [];
    for (const s of shapes) {
      offsets.push(at);
      sizes.push(numel(s));
      at += Math.ceil(numel(s) / align) * align;
    }
    this.offsets = offsets;
    this.sizes = sizes;
    this.total = Math.max(align, at);
    this.blocks = Uint32Array.from([...offsets, this.total], (o) => o / PACK_BLOCK);
    this.tensorOf = new Uint32Array(this.total / PACK_BLOCK);
    offsets.forEach((o, j) => this.tensorOf.fill(j, o / PACK_BLOCK));
    this.key = `${align}|${shapes.map((s) => s.join("x")).join(",")}`;
  }

  static #cache = new Map<string, PackedLayout>();

  /** The layout of tensors of these shapes on `rt` (one object per distinct list). */
  static of(rt: Runtime, shapes: readonly (readonly number[])[]): PackedLayout {
    // Both are powers of two: the larger is a multiple of the smaller.
    const align = Math.max(PACK_BLOCK, rt.storageAlign / 4);
    const key = `${align}|${shapes.map((s) => s.join("x")).join(",")}`;
    let l = PackedLayout.#cache.get(key);
    if (!l) PackedLayout.#cache.set(key, l = new PackedLayout(shapes, align));
    return l;
  }

  get count(): number {
    return this.shapes.length;
  }
}

/** The layout a list of tensors would pack into. */
export const layoutOf = (list: readonly Tensor[]): PackedLayout =>
  PackedLayout.of(list[0].rt, list.map((t) => t.shape));

/**
 * The packed buffer `list` already lives in — every tensor a view of one base at its layout
 * offset — or undefined (separate tensors, or another arrangement).
 */
export function packedBase(list: readonly Tensor[], layout: PackedLayout): Tensor | undefined {
  if (list.length !== layout.count || list.length === 0) return undefined;
  const base = list[0].base;
  if (!base || base.size !== layout.total || base.dtype !== "f32") return undefined;
  for (let j = 0; j < list.length; j++) {
    const t = list[j];
    if (t.base !== base || t.byteOffset !== layout.offsets[j] * 4 || t.size !== layout.sizes[j]) {
      return undefined;
    }
  }
  return base;
}

/** Views of a packed buffer, one per tensor of the layout (each holds a reference on it). */
export function packedViews(flat: Tensor, layout: PackedLayout): Tensor[] {
  if (flat.size !== layout.total) {
    throw new RangeError(`packedViews: ${flat} does not hold a layout of ${layout.total}`);
  }
  return layout.shapes.map((s, j) => flat.subView(layout.offsets[j], s));
}

/** A zeroed packed buffer (owned by the caller, outside every scope). */
export const packedZeros = (rt: Runtime, layout: PackedLayout): Tensor =>
  rt.keep(rt.zeros([layout.total]));

/**
 * `list` as a packed buffer: its base when it is already packed (a new reference), else a
 * zeroed buffer the tensors are copied into (copy commands, no dispatches). Caller disposes.
 */
export function toPacked(list: readonly Tensor[], layout: PackedLayout): Tensor {
  const base = packedBase(list, layout);
  if (base) return base.retain();
  const rt = list[0].rt;
  const flat = packedZeros(rt, layout);
  list.forEach((t, j) => {
    if (t.size !== layout.sizes[j] || t.dtype !== "f32") {
      throw new RangeError(`toPacked: ${t} does not fit tensor ${j} of the layout`);
    }
    if (!t.size) return;
    const slot = flat.subView(layout.offsets[j], t.shape); // rt.copy writes at dst's offset
    rt.copy(t, slot, t.byteLength);
    slot.dispose();
  });
  return flat;
}

/**
 * Views of `flat` as the tensors of `layout`, handing over the caller's reference on `flat`
 * (the views own it together: it is freed with the last one). Views join the current scope.
 */
export function unpack(flat: Tensor, layout: PackedLayout): Tensor[] {
  const views = packedViews(flat, layout);
  flat.dispose();
  return views;
}

const tables = new WeakMap<Runtime, Map<string, Tensor>>();

function table(rt: Runtime, layout: PackedLayout, which: "blocks" | "tensorOf"): Tensor {
  let m = tables.get(rt);
  if (!m) tables.set(rt, m = new Map());
  const key = `${which}|${layout.key}`;
  let t = m.get(key);
  if (!t || t.disposed) m.set(key, t = rt.keep(rt.tensor(layout[which])));
  return t;
}

/**
 * `layout.blocks` on the GPU (u32, J + 1): each tensor's block range (per-tensor sums).
 * One per runtime and layout, kept for the runtime's life (a few hundred bytes).
 */
export const blockTable = (rt: Runtime, layout: PackedLayout): Tensor =>
  table(rt, layout, "blocks");

/**
 * `layout.tensorOf` on the GPU (u32, one per block): a workgroup's tensor in one load (a
 * search over `blocks` would cost a storage load per step on lavapipe). Kept as blockTable.
 */
export const tensorTable = (rt: Runtime, layout: PackedLayout): Tensor =>
  table(rt, layout, "tensorOf");
