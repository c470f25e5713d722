/**
 * Host side of the attention kernels: shape checks, the uniform, the grids, the choice of
 * family, and binding placeholders for absent optional tensors. Sizes, masks and which
 * tangents are present travel in the uniform, so one pipeline serves every size.
 */
import type { Binding, Runtime } from "../../runtime/runtime.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import { cdiv, grid1d, type KernelSpec } from "../../runtime/kernel.ts";
import { type AttnKernel, flashSpec, plainSpec, sgSpec } from "./specs.ts";
import { F, vecOf, WG } from "./wgsl.ts";

/** Masking and scaling shared by every kernel. */
export interface AttnMask {
  readonly causal: boolean;
  /** (B, T) i32 segment ids; needs S = T. */
  readonly segIds?: Tensor;
  /** Score scale (usually 1/√D). */
  readonly scale: number;
}

/** Tangents of the forward's inputs (absent = zero). */
export interface FwdTangents {
  readonly dq?: Tensor;
  readonly dk?: Tensor;
  readonly dv?: Tensor;
}
/** Tangents of the backward's inputs q, k, v, O, L, gO, gL (absent = zero). */
export interface BwdTangents extends FwdTangents {
  readonly dO?: Tensor;
  readonly dL?: Tensor;
  readonly dgO?: Tensor;
  readonly dgL?: Tensor;
}

export interface Dims {
  readonly B: number;
  readonly H: number;
  readonly Hkv: number;
  readonly T: number;
  readonly S: number;
  readonly D: number;
}

/**
 * Which kernel family runs. "auto": on GPUs (not a CPU adapter) "flash" (flash.ts); on CPU
 * adapters the subgroup variants where the adapter has 8-lane subgroups, reading their vec4
 * inputs as staged texels (texels.ts: lavapipe's storage loads are per-lane loops), else
 * plain. "texture" falls back to "subgroup" where D % 4 ≠ 0 or an input is too large for a
 * texture; "flash" (auto's too) to "plain" where a kernel's tile row does not fit the
 * workgroup memory (the tangents' four staged arrays at D > 1020).
 */
export type AttnFamily = "auto" | "plain" | "subgroup" | "texture" | "flash";

/** Per-call kernel options (tests force each family and count texel / flash dispatches). */
export interface AttnKernelOptions {
  /** Default "auto". */
  readonly family?: AttnFamily;
  /** Incremented once per dispatch that reads texels. */
  readonly texelRuns?: { count: number };
  /** Incremented once per dispatch of a flash kernel. */
  readonly flashRuns?: { count: number };
}

/** What the family choice depends on (a Runtime has these). */
export interface AdapterTraits {
  readonly isCpuAdapter: boolean;
  readonly hasSubgroups: boolean;
  readonly subgroupSize: number;
}

/** Check q (B, H, T, D), k / v (B, Hkv, S, D) and the segment ids; returns the sizes. */
export function dims(q: Tensor, k: Tensor, v: Tensor, m: AttnMask): Dims {
  if (q.shape.length !== 4 || k.shape.length !== 4) {
    throw new RangeError(`attention: q ${q} and k ${k} must be 4-D (B, H, T, D) / (B, Hkv, S, D)`);
  }
  const [B, H, T, D] = q.shape;
  const [Bk, Hkv, S, Dk] = k.shape;
  if (Bk !== B || Dk !== D || v.shape.join() !== k.shape.join()) {
    throw new RangeError(`attention: q ${q}, k ${k}, v ${v} do not agree on B / D / (S, D)`);
  }
  if (H % Hkv) throw new RangeError(`attention: ${H} query heads are not a multiple of ${Hkv}`);
  if (m.segIds) {
    if (m.segIds.dtype !== "i32" || m.segIds.size !== B * T) {
      throw new TypeError(`attention: segIds ${m.segIds} must be i32 (B, T) = (${B}, ${T})`);
    }
    if (S !== T) throw new RangeError(`attention: segIds need S = T (got S ${S}, T ${T})`);
  }
  return { B, H, Hkv, T, S, D };
}

/** The uniform U of wgsl.ts: u.n = heads (row / column kernels) or items (lane kernels). */
function uniformWords(d: Dims, n: number, flags: number, scale: number): Uint32Array {
  const u = new Uint32Array(8);
  u.set([n, d.H, d.Hkv, d.T, d.S, d.H / d.Hkv, flags]);
  new Float32Array(u.buffer)[7] = scale;
  return u;
}
/** Row kernels: (row block, b·h); column kernels: (key block, b·kv head). */
function headGrid(len: number, heads: number): [number, number, number] {
  const y = Math.min(heads, 65535);
  return [cdiv(len, WG), y, cdiv(heads, y)];
}
function maskFlags(m: AttnMask): number {
  return (m.causal ? F.causal : 0) | (m.segIds ? F.seg : 0);
}

/**
 * The family a request resolves to on an adapter, before the per-kernel fallbacks of choose
 * ("texture" → "subgroup", "flash" → "plain"). "auto": flash on GPUs; on CPU adapters
 * texture (subgroup variants over texels) with 8-lane subgroups, else plain.
 */
export function familyFor(a: AdapterTraits, f: AttnFamily): Exclude<AttnFamily, "auto"> {
  const sg8 = a.hasSubgroups && a.subgroupSize === 8;
  if ((f === "subgroup" || f === "texture") && !sg8) {
    throw new Error("attention: the subgroup kernels need an adapter with 8-lane subgroups");
  }
  if (f !== "auto") return f;
  if (!a.isCpuAdapter) return "flash";
  return sg8 ? "texture" : "plain";
}

/**
 * Pick the spec for these tensors (the uniform binds after them): plain, flash, subgroup,
 * or subgroup over texels — then stage the texel inputs (slots 8 + binding index, clear of
 * matmul's 0 and 1).
 */
function choose(
  rt: Runtime,
  D: number,
  k: AttnKernel,
  ts: readonly Tensor[],
  u: Binding,
  o: AttnKernelOptions,
): [KernelSpec, Binding[]] {
  const f = familyFor(rt, o.family ?? "auto");
  if (f === "flash") {
    const s = flashSpec(k, D);
    if (s) {
      if (o.flashRuns) o.flashRuns.count++;
      return [s, [...ts, u]];
    }
  }
  if (f === "plain" || f === "flash") return [plainSpec(k, D), [...ts, u]];
  if (f === "texture" && vecOf(D).v4) {
    const s = sgSpec(k, D, true);
    const fits = ts.every((t, i) => s.bindings[i] !== "texture" || rt.texelsFit(t.size));
    if (fits) {
      if (o.texelRuns) o.texelRuns.count++;
      return [s, [...ts.map((t, i) => (s.bindings[i] === "texture" ? rt.texels(t, 8 + i) : t)), u]];
    }
  }
  return [sgSpec(k, D, false), [...ts, u]];
}

/**
 * Binding helper for one call: absent optional tensors get a 16-byte placeholder (never
 * read) and set no flag; present ones set theirs. release() returns the placeholders.
 */
export class Binder {
  readonly #temps: Tensor[] = [];
  #flags = 0;
  constructor(readonly rt: Runtime) {}
  opt(t: Tensor | undefined, flag = 0): Tensor {
    if (t) {
      this.#flags |= flag;
      return t;
    }
    const p = this.rt.empty([4]);
    this.#temps.push(p);
    return p;
  }
  seg(m: AttnMask): Tensor {
    if (m.segIds) return m.segIds;
    const p = this.rt.empty([4], "i32");
    this.#temps.push(p);
    return p;
  }
  /** Dispatch row / column kernel k over `ts` (inputs then outputs) with mask m. */
  launch(k: AttnKernel, d: Dims, m: AttnMask, ts: readonly Tensor[], o: AttnKernelOptions): void {
    const heads = k.side === "row" ? d.B * d.H : d.B * d.Hkv;
    const u = this.rt.uniform(uniformWords(d, heads, maskFlags(m) | this.#flags, m.scale));
    this.rt.dispatch(
      ...choose(this.rt, d.D, k, ts, u, o),
      headGrid(k.side === "row" ? d.T : d.S, heads),
    );
  }
  /** Dispatch a one-lane-per-item kernel over `n` items (no mask, scale 0). */
  lanes(s: KernelSpec, d: Dims, n: number, ts: readonly Tensor[]): void {
    const u = this.rt.uniform(uniformWords(d, n, this.#flags, 0));
    this.rt.dispatch(s, [...ts, u], grid1d(cdiv(n, WG)));
  }
  /** After the last dispatch: later users of the placeholders are ordered after it. */
  release(): void {
    for (const t of this.#temps.splice(0)) t.dispose();
  }
}
