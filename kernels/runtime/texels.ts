/**
 * Texel staging: a tensor's contents copied into an rgba32float texture, so kernels can
 * read it with `textureLoad` instead of storage-buffer loads.
 *
 * Why: Mesa 22.3's lavapipe (Debian bookworm, our CI) compiles every storage-buffer load
 * into a loop over the 8 lanes with a branch and a store-forwarding stall per lane and
 * component (lp_bld_nir_soa.c emit_load_mem, seen in the JIT code under gdb), while a
 * texel fetch is a vector gather. A matmul that reads both operands as texels runs
 * 2.5–4.5× faster there, copies included (bench/matmul_perf.ts: `matmul_f32_*` against
 * `matmul_storage_f32_*`).
 *
 * Layout ("linear texels"): vec4 number v of the tensor is texel (v % TEXEL_ROW, v /
 * TEXEL_ROW), so a kernel indexes texels exactly as it would index `array<vec4f>`.
 * The copy needs bytesPerRow % 256 = 0: TEXEL_ROW · 16 bytes is.
 *
 * Memory: the textures are kept for reuse outside the buffer pool, so `rt.pool.peak` does
 * not see them; `rt.texelBytes` does (the answer stages add it to their peak bytes).
 */
import type { Tensor } from "./tensor.ts";

/** Texels per texture row (4096 floats). */
export const TEXEL_ROW = 1024;

/** WGSL for a load helper `name(i)` reading vec4 number i of texture `tex`. */
export function texelLoadFn(name: string, tex: string): string {
  return `fn ${name}(i: u32) -> vec4f { return textureLoad(${tex}, vec2u(i % ${TEXEL_ROW}u, i / ${TEXEL_ROW}u), 0); }`;
}

/** WGSL for `name(i)` reading float number i (one component of texel i / 4). */
export function texelLoadScalarFn(name: string, tex: string): string {
  return `fn ${name}(i: u32) -> f32 { let q = i / 4u; return textureLoad(${tex}, vec2u(q % ${TEXEL_ROW}u, q / ${TEXEL_ROW}u), 0)[i % 4u]; }`;
}

/** A texture view to bind where a kernel declares `texture_2d<f32>`. */
export interface TexelView {
  readonly view: GPUTextureView;
}

/** Rows of texture a tensor of `floats` elements needs. */
export const texelRows = (floats: number): number => Math.ceil(floats / 4 / TEXEL_ROW);

/**
 * Reusable staging textures, one per (slot, power-of-two height). Reuse is safe: the copy
 * into a texture is recorded after every earlier dispatch that read it, and WebGPU orders
 * commands of one queue.
 */
export class TexelStore {
  #textures = new Map<string, { texture: GPUTexture; view: GPUTextureView }>();
  /** Bytes of the staging textures held (they are kept for reuse, outside the buffer pool). */
  bytes = 0;

  constructor(readonly device: GPUDevice) {}

  /** Whether a tensor of `floats` elements can be staged (vec4 texels, height limit). */
  fits(floats: number): boolean {
    return floats % 4 === 0 && floats > 0 &&
      texelRows(floats) <= this.device.limits.maxTextureDimension2D;
  }

  /** Record the copy of `t` into staging texture `slot` on `enc`; returns its view. */
  stage(enc: GPUCommandEncoder, t: Tensor, slot: number): TexelView {
    if (!this.fits(t.size) || t.dtype !== "f32") {
      throw new RangeError(`tensor [${t.shape}] ${t.dtype} cannot be staged as texels`);
    }
    const texels = t.size / 4;
    const rows = texelRows(t.size);
    const height = Math.min(
      2 ** Math.ceil(Math.log2(rows)),
      this.device.limits.maxTextureDimension2D,
    );
    const key = `${slot}:${height}`;
    let tex = this.#textures.get(key);
    if (!tex) {
      const texture = this.device.createTexture({
        label: `texels ${key}`,
        size: [TEXEL_ROW, height],
        format: "rgba32float",
        usage: 0x04 /* TEXTURE_BINDING */ | 0x02, /* COPY_DST */
      });
      tex = { texture, view: texture.createView() };
      this.#textures.set(key, tex);
      this.bytes += TEXEL_ROW * height * 16;
    }
    const full = Math.floor(texels / TEXEL_ROW), rest = texels % TEXEL_ROW;
    const bytesPerRow = TEXEL_ROW * 16;
    if (full > 0) {
      enc.copyBufferToTexture({ buffer: t.buf, offset: t.byteOffset, bytesPerRow }, {
        texture: tex.texture,
      }, [
        TEXEL_ROW,
        full,
      ]);
    }
    if (rest > 0) {
      enc.copyBufferToTexture(
        { buffer: t.buf, offset: t.byteOffset + full * bytesPerRow, bytesPerRow },
        { texture: tex.texture, origin: [0, full] },
        [rest, 1],
      );
    }
    return { view: tex.view };
  }

  destroy(): void {
    for (const t of this.#textures.values()) t.texture.destroy();
    this.#textures.clear();
    this.bytes = 0;
  }
}
