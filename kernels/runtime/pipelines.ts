/**
 * The runtime's two caches for recording dispatches: compiled pipelines (one per distinct
 * WGSL source, found first by spec object) and bind groups (one per pipeline + bound objects
 * + sizes, least recently used evicted). Split out of runtime.ts so that file keeps to
 * tensors, scopes and submission; behaviour is the runtime's.
 */
import type { KernelSpec } from "./kernel.ts";
import { Tensor } from "./tensor.ts";
import type { TexelView } from "./texels.ts";
import type { UniformArena } from "./uniforms.ts";

export type Binding =
  | Tensor
  | GPUBuffer
  | { buffer: GPUBuffer; offset?: number; size?: number }
  | TexelView;

export interface Compiled {
  readonly spec: KernelSpec;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

/** The counters of `Runtime.stats` these caches bump. */
export interface CacheStats {
  compiles: number;
  bindGroupHits: number;
}

/** Bind groups kept for reuse (least recently used evicted). */
const BIND_GROUP_CACHE = 4096;

export class PipelineCache {
  #pipelines = new Map<string, Compiled>();
  /** Pipelines by spec object (kernels keep their specs), then by WGSL text. */
  #bySpec = new WeakMap<KernelSpec, Compiled>();
  #compileErrors: string[] = [];
  /** Bind groups by key (see `bindGroup`); a destroyed buffer's ids never recur, so its
   * groups are simply never hit again and age out. */
  #bindGroups = new Map<string, GPUBindGroup>();
  #ids = new WeakMap<object, number>();
  #nextId = 1;

  constructor(
    readonly device: GPUDevice,
    readonly uniforms: UniformArena,
    readonly stats: () => CacheStats,
  ) {}

  #objectId(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) this.#ids.set(o, id = this.#nextId++);
    return id;
  }

  get maxBindingBytes(): number {
    return this.device.limits.maxStorageBufferBindingSize;
  }

  /** Compile (once per distinct source) and return the pipeline for a spec. */
  compile(spec: KernelSpec): Compiled {
    const known = this.#bySpec.get(spec);
    if (known) return known;
    const key = spec.code;
    const hit = this.#pipelines.get(key);
    if (hit) {
      this.#bySpec.set(spec, hit);
      return hit;
    }
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ code: spec.code, label: spec.name });
    const layout = this.device.createBindGroupLayout({
      label: spec.name,
      entries: spec.bindings.map((kind, binding) =>
        kind === "texture"
          ? {
            binding,
            visibility: 4, // GPUShaderStage.COMPUTE
            texture: { sampleType: "unfilterable-float" as const, viewDimension: "2d" as const },
          }
          : {
            binding,
            visibility: 4,
            buffer: {
              type: kind === "uniform"
                ? "uniform" as const
                : kind === "read"
                ? "read-only-storage" as const
                : "storage" as const,
              // Uniform blocks are arena slots: the offset is given per dispatch, so one bind
              // group serves every slot of a chunk (see the bind-group cache below).
              hasDynamicOffset: kind === "uniform",
            },
          }
      ),
    });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entry ?? "main" },
    });
    // Validation errors arrive asynchronously; surfaced by the runtime's next wait.
    this.device.popErrorScope().then((err) => {
      if (err) {
        this.#compileErrors.push(`kernel '${spec.name}' failed to compile: ${err.message}`);
      }
    });
    this.stats().compiles++;
    const c = { spec, pipeline, layout };
    this.#pipelines.set(key, c);
    this.#bySpec.set(spec, c);
    return c;
  }

  /** Throw the compile errors reported since the last call, if any. */
  throwCompileErrors(): void {
    if (this.#compileErrors.length) {
      const msg = this.#compileErrors.join("\n");
      this.#compileErrors = [];
      throw new Error(msg);
    }
  }

  /**
   * The bind group for one dispatch of `c`, and its dynamic (uniform slot) offsets. Bind
   * groups are cached by (pipeline, bound objects, sizes): a dispatch repeated on the same
   * buffers (every inner step, every layer's pooled activations) reuses its group.
   */
  bindGroup(
    c: Compiled,
    bindings: readonly Binding[],
  ): { group: GPUBindGroup; dynamicOffsets: number[] } {
    const spec = c.spec;
    const dynamicOffsets: number[] = [];
    let key = `${this.#objectId(c)}`;
    const entries: GPUBindGroupEntry[] = bindings.map((b, binding) => {
      if (b instanceof Tensor) {
        if (b.byteLength > this.maxBindingBytes) {
          throw new RangeError(
            `kernel '${spec.name}': ${b} is ${b.byteLength} bytes, over this adapter's ` +
              `maxStorageBufferBindingSize (${this.maxBindingBytes}); bind it in windows ` +
              "(rt.windows) or split the tensor",
          );
        }
        key += `|${this.#objectId(b.buf)}:${b.byteOffset}:${b.byteLength}`;
        return {
          binding,
          resource: { buffer: b.buf, offset: b.byteOffset, size: b.byteLength },
        };
      }
      if ("mapState" in b) {
        if (spec.bindings[binding] === "uniform") dynamicOffsets.push(0);
        key += `|${this.#objectId(b)}`;
        return { binding, resource: { buffer: b } };
      }
      if ("view" in b) {
        key += `|${this.#objectId(b.view)}`;
        return { binding, resource: b.view };
      }
      this.uniforms.check(b, spec.name);
      if (spec.bindings[binding] === "uniform") {
        dynamicOffsets.push(b.offset ?? 0);
        key += `|${this.#objectId(b.buffer)}:u${b.size}`;
        return { binding, resource: { buffer: b.buffer, offset: 0, size: b.size } };
      }
      key += `|${this.#objectId(b.buffer)}:${b.offset ?? 0}:${b.size}`;
      return { binding, resource: { buffer: b.buffer, offset: b.offset ?? 0, size: b.size } };
    });
    let group = this.#bindGroups.get(key);
    if (group) {
      this.#bindGroups.delete(key); // most recent last: the oldest is evicted first
      this.stats().bindGroupHits++;
    } else {
      group = this.device.createBindGroup({ layout: c.layout, entries });
      if (this.#bindGroups.size >= BIND_GROUP_CACHE) {
        this.#bindGroups.delete(this.#bindGroups.keys().next().value!);
      }
    }
    this.#bindGroups.set(key, group);
    return { group, dynamicOffsets };
  }
}
