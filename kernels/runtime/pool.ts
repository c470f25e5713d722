/**
 * Buffer pool: freed GPU buffers are kept by size class and reused, so steady-state loops
 * allocate nothing. Peak bytes in use are tracked; later issues report memory with it.
 */

const USAGE = 0x0080 /* STORAGE */ | 0x0004 /* COPY_SRC */ | 0x0008; /* COPY_DST */

/** Round a byte count up to its size class: powers of two split in 8 steps (≤ 12.5% waste). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 1024) return 2 ** Math.ceil(Math.log2(b));
  const p = 2 ** (Math.floor(Math.log2(b)) - 3);
  return Math.ceil(b / p) * p;
}

export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  /** Bytes handed out and not yet released (size-class bytes). */
  inUse = 0;
  /** Highest `inUse` since the last `resetPeak()`. */
  peak = 0;
  /** Bytes held by the pool in all (in use + cached free buffers). */
  allocated = 0;
  allocations = 0;

  constructor(private readonly device: GPUDevice, private readonly maxBufferSize: number) {}

  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new RangeError(
        `buffer of ${bytes} bytes exceeds this adapter's maxBufferSize ${this.maxBufferSize}; ` +
          "split the tensor (e.g. an embedding by rows) or use a bigger adapter",
      );
    }
    const list = this.#free.get(size);
    let buf = list?.pop();
    if (!buf) {
      buf = this.device.createBuffer({ size, usage: USAGE });
      this.allocated += size;
      this.allocations++;
    }
    this.inUse += size;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.inUse -= size;
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    list.push(buf);
  }

  resetPeak(): void {
    this.peak = this.inUse;
  }

  /** Destroy cached free buffers (returns bytes given back). */
  trim(): number {
    let freed = 0;
    for (const list of this.#free.values()) {
      for (const b of list) {
        freed += b.size;
        b.destroy();
      }
    }
    this.#free.clear();
    this.allocated -= freed;
    return freed;
  }
}
