/**
 * The GPU runtime: device, buffer pool, kernel cache, batched command encoding, scopes.
 * Plain class with fast synchronous methods; the Effect `Gpu` service (gpu.ts) owns its
 * lifetime. Dispatches are recorded into one command encoder and submitted in batches;
 * only `read()` and `sync()` wait for the GPU (counted in `stats.waits`). Uniform blocks live
 * in a shared arena (uniforms.ts) uploaded once per submit; pipelines and bind groups are
 * cached in pipelines.ts.
 */
import { BufferPool } from "./pool.ts";
import { byteLength, type DType, numel, Tensor } from "./tensor.ts";
import type { KernelSpec } from "./kernel.ts";
import { type Binding, type Compiled, PipelineCache } from "./pipelines.ts";
import { TexelStore, type TexelView } from "./texels.ts";
import { UniformArena, type UniformSlot } from "./uniforms.ts";

export type { Binding } from "./pipelines.ts";

export interface AdapterRecord {
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly isFallbackAdapter: boolean;
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
  readonly features: readonly string[];
  readonly limits: Readonly<Record<string, number>>;
}

/** Dispatches per timestamp query set; a full set is resolved and reused (nothing dropped). */
const PROFILE_SET = 2048;

type Scope = Tensor[];

/** Anything containing tensors (arrays, plain objects, Maps) — used to find scope results. */
function collectTensors(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 6 || value === null || typeof value !== "object") return;
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) { for (const v of value) collectTensors(v, out, depth + 1); }
  else if (value instanceof Map) {
    for (const v of value.values()) {
      collectTensors(v, out, depth + 1);
    }
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export class Runtime {
  readonly pool: BufferPool;
  readonly subgroupSize: number;
  readonly hasSubgroups: boolean;
  readonly hasF16: boolean;
  readonly hasTimestamps: boolean;
  /** How many dispatches go into one command buffer before it is submitted. */
  batchSize = 64;
  /**
   * Counters for benchmarks and tests. `waits`: host waits for the device (each `read`,
   * `sync` and profile collection) — the only places the host blocks.
   */
  stats = { dispatches: 0, submits: 0, reads: 0, waits: 0, compiles: 0, bindGroupHits: 0 };
  lostReason: string | undefined;

  readonly #kernels: PipelineCache;
  #encoder: GPUCommandEncoder | undefined;
  #pass: GPUComputePassEncoder | undefined;
  #pending = 0;
  #scopes: Scope[] = [];
  readonly #uniforms: UniformArena;
  #profiler:
    | {
      /** Names carry the kernel's specialisation (enableProfiling's `detail`). */
      detail: boolean;
      query: GPUQuerySet;
      names: string[];
      resolve: GPUBuffer;
      /** Full query sets already resolved into staging buffers, awaiting collectProfile. */
      staged: { staging: GPUBuffer; names: string[] }[];
    }
    | undefined;
  profile: Map<string, { calls: number; ns: number }> | undefined;

  readonly #texels: TexelStore;

  constructor(readonly device: GPUDevice, readonly adapter: AdapterRecord) {
    this.pool = new BufferPool(device, device.limits.maxBufferSize);
    this.#texels = new TexelStore(device);
    this.#uniforms = new UniformArena(device, device.limits.minUniformBufferOffsetAlignment);
    this.#kernels = new PipelineCache(device, this.#uniforms, () => this.stats);
    this.hasSubgroups = device.features.has("subgroups");
    this.hasF16 = device.features.has("shader-f16");
    this.hasTimestamps = device.features.has("timestamp-query");
    this.subgroupSize = adapter.subgroupMinSize === adapter.subgroupMaxSize
      ? adapter.subgroupMinSize
      : 0;
    device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  get isCpuAdapter(): boolean {
    return this.adapter.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(
      this.adapter.description,
    );
  }

  get maxBindingBytes(): number {
    return this.device.limits.maxStorageBufferBindingSize;
  }

  /** Byte alignment of a storage binding's offset (where a `subView` may start). */
  get storageAlign(): number {
    return this.device.limits.minStorageBufferOffsetAlignment;
  }

  // ---------------------------------------------------------------- tensors & scopes

  /** A new uninitialised tensor from the pool (registered in the current scope). */
  empty(shape: readonly number[], dtype: DType = "f32"): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad tensor shape [${shape}]`);
    }
    const t = new Tensor(this, this.pool.acquire(byteLength(shape, dtype)), shape, dtype);
    this.#scopes.at(-1)?.push(t);
    return t;
  }

  /** A tensor holding `data` (f32 by default; Int32Array → i32, Uint32Array → u32). */
  tensor(
    data: ArrayLike<number> | Float32Array | Int32Array | Uint32Array,
    shape: readonly number[] = [data.length],
    dtype?: DType,
  ): Tensor {
    const dt: DType = dtype ??
      (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
    if (numel(shape) !== data.length) {
      throw new RangeError(`data of length ${data.length} does not fit shape [${shape}]`);
    }
    const t = this.empty(shape, dt);
    this.write(t, data);
    return t;
  }

  /** Register a tensor made elsewhere (e.g. a view) in the current scope. */
  adopt(t: Tensor): Tensor {
    this.#scopes.at(-1)?.push(t);
    return t;
  }

  zeros(shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = this.empty(shape, dtype);
    this.clear(t);
    return t;
  }

  /** Record setting every element of `t` (a view included) to zero: a command, no dispatch. */
  clear(t: Tensor): void {
    this.#endPass();
    this.#enc().clearBuffer(t.buf, t.byteOffset, t.byteLength);
  }

  /** Upload into an existing tensor. Flushes recorded work first (pooled buffers may be reused). */
  write(t: Tensor, data: ArrayLike<number> | ArrayBufferView, byteOffset = 0): void {
    this.flush();
    let view: ArrayBufferView;
    if (ArrayBuffer.isView(data)) view = data;
    else if (t.dtype === "f32") view = Float32Array.from(data as ArrayLike<number>);
    else if (t.dtype === "i32") view = Int32Array.from(data as ArrayLike<number>);
    else if (t.dtype === "u32") view = Uint32Array.from(data as ArrayLike<number>);
    else view = Uint16Array.from(data as ArrayLike<number>);
    let bytes = new Uint8Array(view.buffer as ArrayBuffer, view.byteOffset, view.byteLength);
    if (bytes.byteLength % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    this.device.queue.writeBuffer(t.buf, t.byteOffset + byteOffset, bytes);
  }

  /**
   * Run `fn`; every tensor created inside is released at the end unless it is reachable
   * from the returned value (Tensor, arrays, plain objects, Maps), which moves to the
   * enclosing scope.
   */
  scope<T>(fn: () => T): T {
    const mine: Scope = [];
    this.#scopes.push(mine);
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.#scopes.pop();
      for (const t of mine) t.dispose();
      throw e;
    }
    this.#scopes.pop();
    this.#closeScope(mine, result);
    return result;
  }

  /** Async variant of `scope` (do not interleave two async scopes on one runtime). */
  async scopeAsync<T>(fn: () => Promise<T>): Promise<T> {
    const mine: Scope = [];
    this.#scopes.push(mine);
    let result: T;
    try {
      result = await fn();
    } catch (e) {
      this.#scopes.splice(this.#scopes.lastIndexOf(mine), 1);
      for (const t of mine) t.dispose();
      throw e;
    }
    this.#scopes.splice(this.#scopes.lastIndexOf(mine), 1);
    this.#closeScope(mine, result);
    return result;
  }

  /** Move `t` out of all scopes: the caller now owns it and must dispose it. */
  keep<T extends Tensor>(t: T): T {
    for (const s of this.#scopes) {
      const i = s.lastIndexOf(t);
      if (i >= 0) {
        s.splice(i, 1);
        break;
      }
    }
    return t;
  }

  #closeScope(mine: Scope, result: unknown): void {
    const keepSet = new Set<Tensor>();
    collectTensors(result, keepSet);
    const parent = this.#scopes.at(-1);
    for (const t of mine) {
      if (keepSet.has(t)) parent?.push(t);
      else t.dispose();
    }
  }

  /**
   * Split a tensor into bindable windows of whole rows of `rowElems` elements, each at
   * most maxStorageBufferBindingSize bytes and starting at an offset the adapter accepts.
   * Kernels over large tensors dispatch once per window.
   */
  windows(
    t: Tensor,
    rowElems = 1,
  ): { buffer: GPUBuffer; offset: number; size: number; first: number; count: number }[] {
    const elem = t.byteLength / Math.max(1, t.size);
    const align = this.device.limits.minStorageBufferOffsetAlignment;
    const rowBytes = rowElems * elem;
    // Rows per window: fit the binding limit, and keep every window start aligned.
    let rows = Math.max(1, Math.floor(this.maxBindingBytes / rowBytes));
    const step = align / gcd(align, rowBytes);
    rows = Math.max(step, rows - (rows % step));
    const total = Math.ceil(t.size / rowElems);
    const out = [];
    for (let first = 0; first < total; first += rows) {
      const count = Math.min(rows, total - first);
      const offset = first * rowBytes;
      out.push({
        buffer: t.buf,
        offset: t.byteOffset + offset, // a view's offset is aligned, so window starts stay so
        size: Math.min(count * rowBytes, t.byteLength - offset),
        first,
        count,
      });
    }
    return out;
  }

  releaseBuffer(buf: GPUBuffer): void {
    this.pool.release(buf);
  }

  // ---------------------------------------------------------------- kernels

  /** Compile (once per distinct source) and return the pipeline for a spec. */
  compile(spec: KernelSpec): Compiled {
    return this.#kernels.compile(spec);
  }

  /**
   * Record one dispatch. `bindings[i]` is bound to `@binding(i)`; numbers in `uniforms`
   * (if the spec's last binding is "uniform") are packed as u32/f32 words by the caller.
   */
  dispatch(
    spec: KernelSpec,
    bindings: readonly Binding[],
    workgroups: readonly [number, number?, number?],
  ): void {
    if (this.lostReason) throw new Error(`GPU device lost (${this.lostReason})`);
    const c = this.compile(spec);
    if (bindings.length !== spec.bindings.length) {
      throw new Error(
        `kernel '${spec.name}' takes ${spec.bindings.length} bindings, got ${bindings.length}`,
      );
    }
    const { group, dynamicOffsets } = this.#kernels.bindGroup(c, bindings);
    const [x, y = 1, z = 1] = workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    if (this.#profiler) {
      this.#profiledDispatch(c, group, dynamicOffsets, x, y, z);
    } else {
      const pass = this.#beginPass();
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, group, dynamicOffsets);
      pass.dispatchWorkgroups(x, y, z);
    }
    this.stats.dispatches++;
    if (++this.#pending >= this.batchSize) this.flush();
  }

  /**
   * A uniform block holding `words` (u32/i32/f32 packed by the caller): a slot of the shared
   * arena, uploaded with the batch. Bind it in the dispatch(es) recorded right after.
   */
  uniform(words: ArrayBufferView): UniformSlot {
    return this.#uniforms.slot(words);
  }

  /** 64 KiB uniform arena chunks allocated so far (they are recycled, not freed). */
  get uniformChunks(): number {
    return this.#uniforms.chunks;
  }

  /** Bytes of the staging textures held (not in `pool`; see texels.ts). */
  get texelBytes(): number {
    return this.#texels.bytes;
  }

  /** Whether `texels` can stage a tensor of `floats` f32 elements. */
  texelsFit(floats: number): boolean {
    return this.#texels.fits(floats);
  }

  /**
   * Record a copy of `t` into staging texture `slot` (texels.ts) and return the view to
   * bind as a "texture" binding of the next dispatch. A later call with the same slot
   * may reuse the texture, so bind the view before staging the slot again.
   */
  texels(t: Tensor, slot: number): TexelView {
    this.#endPass();
    return this.#texels.stage(this.#enc(), t, slot);
  }

  /** Record a buffer-to-buffer copy (views copy from and to their offsets). */
  copy(src: Tensor, dst: Tensor, bytes = Math.min(src.byteLength, dst.byteLength)): void {
    this.#endPass();
    this.#enc().copyBufferToBuffer(src.buf, src.byteOffset, dst.buf, dst.byteOffset, bytes);
  }

  // ---------------------------------------------------------------- submission & readback

  #enc(): GPUCommandEncoder {
    return this.#encoder ??= this.device.createCommandEncoder();
  }

  #beginPass(): GPUComputePassEncoder {
    return this.#pass ??= this.#enc().beginComputePass();
  }

  #endPass(): void {
    this.#pass?.end();
    this.#pass = undefined;
  }

  /** Submit everything recorded so far. */
  flush(): void {
    this.#endPass();
    if (!this.#encoder) return;
    this.#uniforms.upload();
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = undefined;
    this.#pending = 0;
    this.stats.submits++;
    // No completion callback here: Deno's onSubmittedWorkDone() blocks until the device is
    // idle (uniforms.ts). Arena chunks are recycled after the waits reads make anyway.
    this.#uniforms.submitted();
  }

  /** Wait until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    this.stats.waits++;
    const serial = this.#uniforms.serial;
    await this.device.queue.onSubmittedWorkDone();
    this.#uniforms.completed(serial);
    this.#throwCompileErrors();
  }

  /** Copy a tensor back to the CPU. Each call costs a GPU round trip (≥ 10 ms on lavapipe). */
  async read(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array | Uint16Array> {
    const bytes = t.byteLength;
    const staging = this.device.createBuffer({ size: bytes, usage: 0x0001 | 0x0008 }); // MAP_READ|COPY_DST
    this.#endPass();
    this.#enc().copyBufferToBuffer(t.buf, t.byteOffset, staging, 0, bytes);
    this.flush();
    this.stats.reads++;
    this.stats.waits++;
    const serial = this.#uniforms.serial;
    await staging.mapAsync(1 /* READ */);
    // The copy was submitted last, so every earlier submit has completed too.
    this.#uniforms.completed(serial);
    this.#throwCompileErrors();
    if (this.lostReason) throw new Error(`GPU device lost (${this.lostReason})`);
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    switch (t.dtype) {
      case "f32":
        return new Float32Array(copy, 0, t.size);
      case "i32":
        return new Int32Array(copy, 0, t.size);
      case "u32":
        return new Uint32Array(copy, 0, t.size);
      default:
        return new Uint16Array(copy, 0, t.size);
    }
  }

  /** Read an f32 tensor as a Float32Array (throws on other dtypes). */
  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== "f32") throw new TypeError(`readF32 of a ${t.dtype} tensor`);
    return (await this.read(t)) as Float32Array;
  }

  #throwCompileErrors(): void {
    this.#kernels.throwCompileErrors();
  }

  // ---------------------------------------------------------------- profiling

  /**
   * Turn per-kernel timestamp profiling on (one pass per dispatch; slower). `detail`: time each
   * specialisation of a family apart (a matmul per shape: "matmul_tex_nt 288x6144x128").
   */
  enableProfiling(o: { detail?: boolean } = {}): void {
    if (!this.hasTimestamps) return;
    this.flush();
    this.profile = new Map();
    const count = 2 * PROFILE_SET; // begin/end per dispatch
    this.#profiler = {
      detail: o.detail ?? false,
      query: this.device.createQuerySet({ type: "timestamp", count }),
      names: [],
      resolve: this.device.createBuffer({ size: count * 8, usage: 0x0200 | 0x0004 }), // QUERY_RESOLVE|COPY_SRC
      staged: [],
    };
  }

  /** Turn profiling off (collect first: what was not collected is dropped). */
  disableProfiling(): void {
    const p = this.#profiler;
    if (!p) return;
    this.#endPass();
    this.flush();
    p.query.destroy();
    p.resolve.destroy();
    p.staged.forEach((s) => s.staging.destroy());
    this.#profiler = undefined;
    this.profile = undefined;
  }

  /** Resolve the query set's timestamps into a staging buffer (recorded, not waited on). */
  #stageProfile(): void {
    const p = this.#profiler!;
    const n = p.names.length;
    if (!n) return;
    const staging = this.device.createBuffer({ size: n * 16, usage: 0x0001 | 0x0008 });
    this.#endPass();
    this.#enc().resolveQuerySet(p.query, 0, 2 * n, p.resolve, 0);
    this.#enc().copyBufferToBuffer(p.resolve, 0, staging, 0, n * 16);
    p.staged.push({ staging, names: p.names });
    p.names = [];
  }

  #profiledDispatch(
    c: Compiled,
    group: GPUBindGroup,
    dynamicOffsets: number[],
    x: number,
    y: number,
    z: number,
  ): void {
    const p = this.#profiler!;
    // A full set is resolved and the set reused: every dispatch is counted.
    if (p.names.length === PROFILE_SET) this.#stageProfile();
    this.#endPass();
    const i = p.names.length;
    const pass = this.#enc().beginComputePass({
      timestampWrites: {
        querySet: p.query,
        beginningOfPassWriteIndex: 2 * i,
        endOfPassWriteIndex: 2 * i + 1,
      },
    });
    pass.setPipeline(c.pipeline);
    pass.setBindGroup(0, group, dynamicOffsets);
    pass.dispatchWorkgroups(x, y, z);
    pass.end();
    const d = p.detail && c.spec.detail;
    p.names.push(d ? `${c.spec.name} ${d}` : c.spec.name);
  }

  /** Collect profiled timings recorded so far (resolves queries; costs a readback). */
  async collectProfile(): Promise<Map<string, { calls: number; ns: number }>> {
    const p = this.#profiler;
    if (!p || !this.profile) return new Map();
    this.#stageProfile();
    this.flush();
    const staged = p.staged;
    p.staged = [];
    if (staged.length) this.stats.waits++;
    for (const { staging, names } of staged) {
      await staging.mapAsync(1);
      const ts = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.destroy();
      names.forEach((name, i) => {
        const e = this.profile!.get(name) ?? { calls: 0, ns: 0 };
        e.calls++;
        e.ns += Number(ts[2 * i + 1] - ts[2 * i]);
        this.profile!.set(name, e);
      });
    }
    return this.profile;
  }

  destroy(): void {
    try {
      this.flush();
    } finally {
      this.pool.trim();
      this.#texels.destroy();
      this.#uniforms.destroy();
      this.device.destroy();
    }
  }

  /** Elements of `shape` (re-exported convenience). */
  static numel = numel;
}
