/**
 * Fused ("flash") causal self-attention kernels: forward, forward tangent (JVP), backward
 * and the backward's tangent (for Hessian-vector products). Nothing of size T×S is ever
 * allocated: every kernel streams over keys (row kernels: one lane per query row) or over
 * queries (column kernels: one lane per key row, looping over the query heads of its
 * grouped-query group), recomputing s_ij = scale·q_i·k_j and P_ij = exp(s_ij − L_i) from the
 * per-row log-sum-exp L saved by the forward. No atomics: gQ comes from a row kernel, gK/gV
 * from a column kernel.
 *
 * Shapes: q (B, H, T, D), k/v (B, Hkv, S, D), H % Hkv = 0 (query head h reads kv head
 * h / (H/Hkv)). Masks as the composed softmax (nn_kernels.ts): causal hides key j > i + (S−T);
 * segment ids (B, T) i32 (needs S = T) hide keys of another segment. A fully masked row
 * gives O = 0 and L = 0 (the composed softmax gives an all-zero row too).
 *
 * Pipelines are specialised per (kernel, D, family) only — sizes, masks and which tangents
 * are present travel in a uniform. D % 4 = 0 uses vec4 loads; other D a scalar path. Each
 * workgroup covers rows of one (b, head), so its key (or query) loop is uniform.
 *
 * Kernel families, all from one definition per kernel (specs.ts), same outputs and layouts;
 * `AttnKernelOptions.family` forces one, "auto" (the default) picks (launch.ts, familyFor):
 *  - flash (flash.ts) — "auto" on every adapter that is not a CPU adapter (discrete and
 *    integrated GPUs). FlashAttention-2 style: a workgroup owns 64 rows (one thread each) and
 *    streams the other side through workgroup memory in tiles of ≤ 32 rows (≤ 16 KiB);
 *    the forward's online softmax rescales once per tile. Falls back to plain for a kernel
 *    whose tile row does not fit (the tangents' four staged arrays at D > 1020). Untuned:
 *    no GPU has timed it yet (tile rows, threads per row, the 16 KiB budget are guesses).
 *  - texture — "auto" on CPU adapters with 8-lane subgroups (lavapipe): the subgroup family
 *    reading its vec4 inputs as texels; falls back to subgroup where D % 4 ≠ 0 or an input
 *    is too large for a texture.
 *  - subgroup (subgroup.ts) — the other side in blocks of 8 rows, one per lane, shared by
 *    subgroupBroadcast; needs 8-lane subgroups; only when forced (or texture's fallback).
 *  - plain — one lane per row reading the other side straight from storage; "auto" on CPU
 *    adapters without 8-lane subgroups, and flash's fallback.
 * Each kernel has a float64 reference (reference.ts); tests compare every family with them
 * (attention_fused_test.ts: plain / subgroup / texture; attention_flash_test.ts: flash).
 *
 * Files: forward.ts, backward.ts, tangents.ts (the kernels and their launches), wgsl.ts
 * (shared WGSL), subgroup.ts / flash.ts (those families' loops), specs.ts (definition →
 * spec), launch.ts (shapes, uniform, family choice), reference.ts.
 */
export type {
  AdapterTraits,
  AttnFamily,
  AttnKernelOptions,
  AttnMask,
  BwdTangents,
  Dims,
  FwdTangents,
} from "./launch.ts";
export { familyFor } from "./launch.ts";
export { attentionForward } from "./forward.ts";
export { attentionBackward } from "./backward.ts";
export { attentionBackwardTangent, attentionForwardTangent } from "./tangents.ts";
export {
  attentionBackward64,
  attentionBackwardTangent64,
  attentionForward64,
  attentionForwardTangent64,
  type Ref64,
} from "./reference.ts";
