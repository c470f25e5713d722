/**
 * A kernel = a typed spec (name, bindings, WGSL source with sizes baked in as constants)
 * produced by a template function. The runtime compiles each distinct source once.
 *
 * Binding i of the spec is `@group(0) @binding(i)` in the WGSL.
 */

/** "texture": a `texture_2d<f32>` (rgba32float texels staged by `rt.texels`, texels.ts). */
export type BindingKind = "read" | "read_write" | "uniform" | "texture";

export interface KernelSpec {
  /** Stable family name (for profiles and errors), e.g. "matmul_sg". */
  readonly name: string;
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
