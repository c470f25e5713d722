/**
 * Uniform arena: kernels' small uniform blocks packed into shared 64 KiB buffers and bound at
 * offsets, instead of one GPU buffer (createBuffer + writeBuffer + destroy) per dispatch.
 *
 * Life of a chunk: slots are appended on the host (`slot`); at each submit the bytes written
 * since the last upload go up in one `writeBuffer` (`upload`), and every chunk the batch
 * bound is marked in flight; the queue's completion callback (`retire`, a promise callback:
 * nothing waits for it) releases it. A chunk is reused only once it is full or closed AND no
 * submitted batch still reads it, so the host never overwrites bytes the device may read.
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
  inFlight: number;
  closed: boolean;
  generation: number;
}

export class UniformArena {
  #current: Chunk | undefined;
  #free: Chunk[] = [];
  #all: Chunk[] = [];
  /** Chunks bound by dispatches recorded since the last submit. */
  #batch = new Set<Chunk>();
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

  /** After a submit: the chunks this batch bound are in flight until `done` resolves. */
  submitted(done: () => Promise<unknown>): void {
    if (!this.#batch.size) return;
    const chunks = [...this.#batch];
    this.#batch.clear();
    for (const c of chunks) c.inFlight++;
    // Not awaited: completion only recycles chunks; nothing blocks on it.
    done().then(() => {
      for (const c of chunks) {
        c.inFlight--;
        this.#maybeFree(c);
      }
    });
  }

  destroy(): void {
    for (const c of this.#all) c.buf.destroy();
    this.#all = [];
    this.#free = [];
    this.#current = undefined;
  }

  /** A full chunk waits for the next submit's completion (slots taken from it may still be
   * bound by the dispatches recorded next), then is recycled. */
  #close(c: Chunk): void {
    c.closed = true;
    this.#batch.add(c);
  }

  #maybeFree(c: Chunk): void {
    if (!c.closed || c.inFlight > 0 || this.#batch.has(c)) return;
    c.closed = false;
    c.used = c.uploaded = 0;
    c.generation++;
    this.#free.push(c);
  }

  #take(): Chunk {
    const hit = this.#free.pop();
    if (hit) return hit;
    const c: Chunk = {
      buf: this.device.createBuffer({ size: CHUNK_BYTES, usage: UNIFORM | COPY_DST }),
      bytes: new Uint8Array(CHUNK_BYTES),
      used: 0,
      uploaded: 0,
      inFlight: 0,
      closed: false,
      generation: 0,
    };
    this.#all.push(c);
    return c;
  }
}
