/**
 * Uniform arena: kernels' small uniform blocks packed into shared 64 KiB buffers and bound at
 * offsets, instead of one GPU buffer (createBuffer + writeBuffer + destroy) per dispatch.
 *
 * Life of a chunk: slots are appended on the host (`slot`); at each submit the bytes written
 * since the last upload go up in one `writeBuffer` (`upload`), and every chunk the batch
 * bound is marked with that submit's serial (`submitted`). A chunk is reused only once it is
 * full AND every submit that bound it has completed, so the host never overwrites bytes the
 * device may read. Completion is learned only where the runtime waits anyway (`completed`,
 * after a read or sync): in Deno 2.9 `queue.onSubmittedWorkDone()` blocks the host until the
 * device is idle (measured: 114–205 ms of a 118–221 ms flush of 100 lavapipe dispatches), so
 * the arena never calls it per submit. Between two waits the arena holds 256 bytes per
 * dispatch (a 1K meta-step: ~6,500 dispatches, 1.6 MB); every meta-step, encode and decode
 * step ends in a read.
 *
 * A slot is meant for the dispatches recorded right after it (every kernel does that). To
 * keep a stale slot from reading recycled bytes, each slot carries its chunk's generation and
 * `check` refuses it once the chunk was recycled.
 */

const CHUNK_BYTES = 65536; // = the WebGPU default maxUniformBufferBindingSize
const UNIFORM = 0x0040, COPY_DST = 0x0008;

export interface UniformSlot {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

interface Chunk {
  readonly buf: GPUBuffer;
  readonly bytes: Uint8Array<ArrayBuffer>;
  used: number;
  uploaded: number;
  /** Serial of the last submit that bound it (0: none). */
  lastSubmit: number;
  generation: number;
}

export class UniformArena {
  #current: Chunk | undefined;
  #free: Chunk[] = [];
  #all: Chunk[] = [];
  /** Chunks bound by dispatches recorded since the last submit. */
  #batch = new Set<Chunk>();
  /** Full chunks waiting for their last submit to complete. */
  #closed: Chunk[] = [];
  #serial = 0;
  #slots = new WeakMap<UniformSlot, { chunk: Chunk; generation: number }>();

  constructor(readonly device: GPUDevice, readonly align: number) {}

  /** Chunks created so far (each 64 KiB). */
  get chunks(): number {
    return this.#all.length;
  }

  /** Append `words` (padded to 16 bytes) and return the binding for it. */
  slot(words: ArrayBufferView): UniformSlot {
    const size = Math.max(16, Math.ceil(words.byteLength / 16) * 16);
    if (size > CHUNK_BYTES) throw new RangeError(`uniform block of ${size} bytes > 64 KiB`);
    let c = this.#current;
    if (!c || c.used + size > CHUNK_BYTES) {
      if (c) this.#close(c);
      c = this.#current = this.#take();
    }
    const offset = c.used;
    c.bytes.fill(0, offset, offset + size);
    c.bytes.set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength), offset);
    c.used = Math.ceil((offset + size) / this.align) * this.align;
    const s: UniformSlot = { buffer: c.buf, offset, size };
    this.#slots.set(s, { chunk: c, generation: c.generation });
    return s;
  }

  /** If `b` is an arena slot: refuse a stale one, and note that this batch binds its chunk. */
  check(b: object, kernel: string): void {
    const rec = this.#slots.get(b as UniformSlot);
    if (!rec) return;
    if (rec.generation !== rec.chunk.generation) {
      throw new Error(
        `kernel '${kernel}': its uniform slot was recycled; take rt.uniform() right before ` +
          "the dispatch that binds it",
      );
    }
    this.#batch.add(rec.chunk);
  }

  /** Before a submit: upload the bytes written since the last upload of each bound chunk. */
  upload(): void {
    for (const c of this.#batch) {
      if (c.uploaded < c.used) {
        this.device.queue.writeBuffer(c.buf, c.uploaded, c.bytes, c.uploaded, c.used - c.uploaded);
        c.uploaded = c.used;
      }
    }
  }

  /** After a submit: the chunks this batch bound are read by it (its serial). */
  submitted(): void {
    const serial = ++this.#serial;
    for (const c of this.#batch) c.lastSubmit = serial;
    this.#batch.clear();
  }

  /** Every submit up to `serial` has completed (the runtime just waited): recycle. */
  completed(serial: number): void {
    const still: Chunk[] = [];
    for (const c of this.#closed) {
      if (c.lastSubmit <= serial && !this.#batch.has(c)) {
        c.used = c.uploaded = 0;
        c.lastSubmit = 0;
        c.generation++;
        this.#free.push(c);
      } else still.push(c);
    }
    this.#closed = still;
  }

  /** Serial of the latest submit. */
  get serial(): number {
    return this.#serial;
  }

  destroy(): void {
    for (const c of this.#all) c.buf.destroy();
    this.#all = [];
    this.#free = [];
    this.#current = undefined;
  }

  /**
   * A full chunk is recycled once the submits that bound it completed. Slots taken from it may
   * still be bound by the dispatches recorded next: it joins this batch (uploaded with it) so
   * its serial covers them.
   */
  #close(c: Chunk): void {
    this.#batch.add(c);
    this.#closed.push(c);
  }

  #take(): Chunk {
    const hit = this.#free.pop();
    if (hit) return hit;
    const c: Chunk = {
      buf: this.device.createBuffer({ size: CHUNK_BYTES, usage: UNIFORM | COPY_DST }),
      bytes: new Uint8Array(CHUNK_BYTES),
      used: 0,
      uploaded: 0,
      lastSubmit: 0,
      generation: 0,
    };
    this.#all.push(c);
    return c;
  }
}
