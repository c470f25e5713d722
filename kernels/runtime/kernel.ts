/**
 * A kernel = a typed spec (name, bindings, WGSL source with sizes baked in as constants)
 * produced by a template function. The runtime compiles each distinct source once.
 *
 * Binding i of the spec is `@group(0) @binding(i)` in the WGSL.
 *
 * Most kernels are declared with `kernel()` below: inputs, outputs and typed uniforms in, the
 * WGSL header (bindings, uniform struct, lane id and bounds guard) and a typed uniform packer
 * out, so a kernel file writes only its body.
 */
import type { Binding, Runtime } from "./runtime.ts";
import type { Tensor } from "./tensor.ts";

/** "texture": a `texture_2d<f32>` (rgba32float texels staged by `rt.texels`, texels.ts). */
export type BindingKind = "read" | "read_write" | "uniform" | "texture";

export interface KernelSpec {
  /** Stable family name (for profiles and errors), e.g. "matmul_sg". */
  readonly name: string;
  /** The specialisation within the family, e.g. a matmul's "288x6144x128" (profiles by shape). */
  readonly detail?: string;
  /** Full WGSL source. Sizes are usually baked in (one pipeline per specialisation). */
  readonly code: string;
  readonly bindings: readonly BindingKind[];
  /** Entry point; default "main". */
  readonly entry?: string;
}

/** Ceil division, for dispatch sizes. */
export const cdiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/**
 * Split a 1-D workgroup count over x/y so it respects maxComputeWorkgroupsPerDimension
 * (65535). Kernels recover the linear id as `wid.x + wid.y * nwg.x` and bounds-check.
 */
export function grid1d(workgroups: number, max = 65535): [number, number, number] {
  if (workgroups <= max) return [Math.max(1, workgroups), 1, 1];
  const y = cdiv(workgroups, max);
  return [cdiv(workgroups, y), y, 1];
}

// ------------------------------------------------------------------ kernel-spec builder

/** A uniform field's WGSL scalar type (each one 4-byte word of the block). */
export type Scalar = "u32" | "i32" | "f32";
/**
 * A uniform field: a scalar (one word), or a 16-byte-aligned vector / array of vectors
 * (packed from a number list, the rest zero) for per-dimension sizes and strides.
 */
export type UniformType = Scalar | "vec4f" | "vec4u" | `array<vec4u, ${number}>`;
/** Host values of a uniform block: numbers for scalars, number lists for the others. */
export type UniformValues<U extends Record<string, UniformType>> = {
  readonly [K in keyof U]: U[K] extends Scalar ? number : readonly number[];
};
/** A storage binding's element type, or "texture" for an input staged by `rt.texels`. */
export type Elem = Scalar | "vec4f" | "vec2f" | "vec4u";

/** Lane-kernel arguments: linear workgroup id over a 2-D grid (grid1d) + local index. */
export const LANE_ARGS =
  "@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, " +
  "@builtin(local_invocation_index) lid: u32";

export interface KernelDecl<U extends Record<string, UniformType>> {
  readonly name: string;
  /** Read-only bindings, in binding order from 0: storage arrays of `Elem`, or texel inputs. */
  readonly inputs?: Readonly<Record<string, Elem | "texture">>;
  /** read_write storage arrays, bound after the inputs. */
  readonly outputs?: Readonly<Record<string, Elem>>;
  /** Uniform fields in block order: `struct U { … }` bound last as `u`. */
  readonly uniforms?: U;
  /** Workgroup size of a lane kernel (default 64). */
  readonly wg?: number;
  /** WGSL between the header and main: helper functions, constants, workgroup arrays. */
  readonly decls?: string;
  /**
   * One lane per item: `lanes` is the WGSL count (e.g. "u.n"); main computes `id` (the lane
   * on a grid1d grid) and returns past the count, then runs `body`.
   */
  readonly lanes?: string;
  /** A lane main without the bounds guard (the body checks bounds: kernels with barriers). */
  readonly unguarded?: boolean;
  /** Name of the lane id variable (default "id"). */
  readonly id?: string;
  /** Body of a lane kernel (with `lanes`), or the whole entry point with its attributes. */
  readonly body: string;
}

/** A declared kernel: its spec plus a host packer for its typed uniform block. */
export interface Kernel<U extends Record<string, UniformType>> {
  readonly spec: KernelSpec;
  readonly wg: number;
  /** The uniform block's words, typed per field (u32/i32/f32), padded to 16 bytes. */
  pack(values: UniformValues<U>): Uint32Array<ArrayBuffer>;
  /**
   * Record one dispatch: `bindings` are the inputs then outputs (declaration order), the
   * uniform block is packed from `values` into a fresh arena slot. `size`: a lane count
   * (grid1d over `wg`-lane workgroups) or explicit workgroup counts.
   */
  run(
    rt: Runtime,
    bindings: readonly Binding[],
    values: UniformValues<U>,
    size: number | readonly [number, number?, number?],
  ): void;
}

/** Build the WGSL header (uniform struct, bindings) + lane main for a declared kernel. */
export function kernel<const U extends Record<string, UniformType> = Record<never, Scalar>>(
  d: KernelDecl<U>,
): Kernel<U> {
  const wg = d.wg ?? 64;
  const fields = Object.entries(d.uniforms ?? {});
  const lines: string[] = [];
  const bindings: BindingKind[] = [];
  if (fields.length) lines.push(`struct U { ${fields.map(([k, t]) => `${k}: ${t}`).join(", ")} }`);
  for (const [name, t] of Object.entries(d.inputs ?? {})) {
    const b = bindings.length;
    if (t === "texture") {
      lines.push(`@group(0) @binding(${b}) var ${name}: texture_2d<f32>;`);
      bindings.push("texture");
    } else {
      lines.push(`@group(0) @binding(${b}) var<storage, read> ${name}: array<${t}>;`);
      bindings.push("read");
    }
  }
  for (const [name, t] of Object.entries(d.outputs ?? {})) {
    lines.push(
      `@group(0) @binding(${bindings.length}) var<storage, read_write> ${name}: array<${t}>;`,
    );
    bindings.push("read_write");
  }
  if (fields.length) {
    lines.push(`@group(0) @binding(${bindings.length}) var<uniform> u: U;`);
    bindings.push("uniform");
  }
  if (d.decls) lines.push(d.decls.trim());
  if (d.lanes !== undefined || d.unguarded) {
    const id = d.id ?? "id";
    lines.push(
      `@compute @workgroup_size(${wg})`,
      `fn main(${LANE_ARGS}) {`,
      `  let ${id} = (wid.x + wid.y * nwg.x) * ${wg}u + lid;`,
      ...(d.lanes !== undefined ? [`  if (${id} >= ${d.lanes}) { return; }`] : []),
      d.body.replace(/^\n+|\s+$/g, ""),
      "}",
    );
  } else lines.push(d.body.trim());
  const spec: KernelSpec = { name: d.name, bindings, code: "\n" + lines.join("\n") + "\n" };
  // Word offset of each field (WGSL uniform layout: vectors and arrays align to 16 bytes).
  const at: number[] = [];
  let words = 0;
  for (const [, t] of fields) {
    const n = t === "u32" || t === "i32" || t === "f32"
      ? 1
      : t.startsWith("array")
      ? 4 * parseInt(t.slice(12))
      : 4;
    if (n > 1) words = Math.ceil(words / 4) * 4;
    at.push(words);
    words += n;
  }
  return {
    spec,
    wg,
    pack(values) {
      const buf = new ArrayBuffer(Math.max(16, Math.ceil(words / 4) * 16));
      const u = new Uint32Array(buf), i = new Int32Array(buf), f = new Float32Array(buf);
      fields.forEach(([k, t], n) => {
        const v: number | readonly number[] = values[k];
        const w = at[n];
        if (typeof v !== "number") (t === "vec4f" ? f : u).set(v, w);
        else if (t === "f32") f[w] = v;
        else if (t === "i32") i[w] = v;
        else u[w] = v;
      });
      return u;
    },
    run(rt, b, values, size) {
      const all = fields.length ? [...b, rt.uniform(this.pack(values))] : b;
      rt.dispatch(spec, all, typeof size === "number" ? grid1d(cdiv(size, wg)) : size);
    },
  };
}

/**
 * Texel bindings for `ts` (texels.ts): each distinct tensor staged once, in slots 0, 1, …, all
 * before the dispatch that binds them (a later stage of a slot may reuse its texture).
 */
export function stageTexels(rt: Runtime, ts: readonly Tensor[]): Binding[] {
  const staged = new Map<Tensor, Binding>();
  return ts.map((t) => {
    let v = staged.get(t);
    if (!v) staged.set(t, v = rt.texels(t, staged.size));
    return v;
  });
}
