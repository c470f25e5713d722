/**
 * Tensor = a pooled GPU buffer + shape + dtype. Lifetimes are explicit and reference
 * counted: a tensor made inside `rt.scope(fn)` is released when the scope ends unless it
 * is part of the returned value; `retain()`/`dispose()` adjust the count by hand.
 * A view (`view`, `subView`) shares its base's buffer, possibly at a byte offset (packed
 * parameter sets: many tensors in one buffer, so one dispatch can update them all).
 */
import type { Runtime } from "./runtime.ts";

export type DType = "f32" | "f16" | "i32" | "u32";

export const BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes a tensor needs on the GPU (rounded up to 4: WGSL arrays are 4-byte aligned). */
export function byteLength(shape: readonly number[], dtype: DType): number {
  return Math.max(4, Math.ceil((numel(shape) * BYTES[dtype]) / 4) * 4);
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly size: number;
  refs = 1;
  /** Forward-mode tangent (owned; released with the tensor). Set by the autodiff core. */
  tangent: Tensor | undefined = undefined;
  /** Reverse-mode tape node that produced this tensor (owned by the autodiff core). */
  node: unknown = undefined;
  /** For a view (reshape): the tensor whose buffer this shares; it holds one ref on it. */
  base: Tensor | undefined = undefined;

  constructor(
    readonly rt: Runtime,
    public buffer: GPUBuffer | undefined,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** Where the data starts in `buffer` (views into packed buffers; 0 otherwise). */
    readonly byteOffset = 0,
  ) {
    this.size = numel(shape);
  }

  get byteLength(): number {
    return byteLength(this.shape, this.dtype);
  }

  get disposed(): boolean {
    return this.buffer === undefined;
  }

  /** The live buffer, or a clear error for use-after-free. */
  get buf(): GPUBuffer {
    if (!this.buffer) throw new Error(`tensor #${this.id} [${this.shape}] used after dispose`);
    return this.buffer;
  }

  retain(): this {
    this.refs++;
    return this;
  }

  dispose(): void {
    if (!this.buffer) return;
    if (--this.refs > 0) return;
    if (this.base) this.base.dispose();
    else this.rt.releaseBuffer(this.buffer);
    this.buffer = undefined;
    this.base = undefined;
    const t = this.tangent;
    this.tangent = undefined;
    t?.dispose();
    this.node = undefined;
  }

  /** The same data with another shape (no copy): a view holding a reference on this. */
  view(shape: readonly number[]): Tensor {
    if (numel(shape) !== this.size) {
      throw new RangeError(
        `cannot view ${this} as [${shape}]: ${numel(shape)} ≠ ${this.size} elements`,
      );
    }
    const v = this.rt.adopt(new Tensor(this.rt, this.buf, shape, this.dtype, this.byteOffset));
    v.base = this.base ?? this;
    v.base.retain();
    return v;
  }

  /**
   * Elements [offset, offset + numel(shape)) as a tensor of `shape` (no copy): a view holding
   * a reference on this. The byte offset must meet the adapter's storage-binding alignment
   * (`rt.storageAlign`), since kernels bind the view at that offset.
   */
  subView(offset: number, shape: readonly number[]): Tensor {
    const n = numel(shape);
    const bytes = this.byteOffset + offset * BYTES[this.dtype];
    if (!Number.isInteger(offset) || offset < 0 || offset + n > this.size) {
      throw new RangeError(`subView [${offset}, ${offset + n}) is outside ${this}`);
    }
    if (bytes % this.rt.storageAlign !== 0) {
      throw new RangeError(
        `subView of ${this} at element ${offset}: byte offset ${bytes} is not a multiple of ` +
          `the storage-binding alignment ${this.rt.storageAlign}`,
      );
    }
    const v = this.rt.adopt(new Tensor(this.rt, this.buf, shape, this.dtype, bytes));
    v.base = this.base ?? this;
    v.base.retain();
    return v;
  }

  /** Read the data back (one GPU round trip: keep these rare). */
  read(): Promise<Float32Array | Int32Array | Uint32Array | Uint16Array> {
    return this.rt.read(this);
  }

  toString(): string {
    return `Tensor#${this.id}<${this.dtype}>[${this.shape.join(",")}]`;
  }
}
