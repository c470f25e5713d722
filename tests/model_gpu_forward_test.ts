/**
 * The GPU forward against the float64 reference on the tiny gpt2 / qwen2 / llama fixture
 * directories (real HF file layouts): logits and hidden states with and without LoRA (non-zero
 * B; GPT-2's fused c_attn adapter included), KV cache in pieces, left padding, packed
 * segments, LoRA dropout determinism, and no leaked pool bytes.
 */
import assert from "node:assert/strict";
import { loadHfModel } from "../pipeline/model/hf_loader.ts";
import { forward, type ReferenceLora } from "../pipeline/model/reference.ts";
import { defaultLoraConfig, initLora, type LoraParams, withData } from "../pipeline/model/lora.ts";
import { loraTensors } from "../pipeline/model/lora.ts";
import type { Model } from "../pipeline/model/weights.ts";
import {
  type GpuForwardOptions,
  GpuKvCache,
  gpuLora,
  GpuModel,
  uploadLora,
} from "../pipeline/model/gpu_model.ts";
import { assertClose, randn, relErr, testRuntime } from "./testing.ts";

const rt = await testRuntime();
const ARCHS = ["gpt2", "qwen2", "llama"] as const;
const fixture = (arch: string): Model =>
  loadHfModel(new URL(`../fixtures/models/tiny-${arch}`, import.meta.url).pathname);

const rowsOf = [[5, 17, 42, 3, 3, 60, 11, 29, 8], [1, 9, 33, 33, 2, 61, 40, 7, 19]];

/** A LoRA adapter with random non-zero B (B = 0 at init would hide the B·A path). */
function randomLora(m: Model, rank = 3, targets?: string[]): LoraParams {
  const p = initLora(
    m.config,
    defaultLoraConfig(m.config, {
      rank,
      alpha: 4,
      seed: 7,
      ...(targets && { targetModules: targets }),
    }),
  );
  const data = p.data.slice();
  for (const s of p.specs) {
    if (s.kind === "B") data.set(randn(s.size, 100 + s.offset, -0.3, 0.3), s.offset);
  }
  return withData(p, data);
}
const refLora = (p: LoraParams): ReferenceLora => ({ scale: p.scale, tensors: loraTensors(p) });

/** Scale of the logits, for an absolute tolerance that means something across fixtures. */
const absMax = (x: ArrayLike<number>) =>
  Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

async function gpuForward(
  g: GpuModel,
  rows: number[][],
  o: GpuForwardOptions = {},
): Promise<{ logits: Float32Array; hidden: Float32Array }> {
  return await rt.scopeAsync(async () => {
    const ids = Int32Array.from(rows.flat());
    const r = g.forward(ids, { batch: rows.length, ...o });
    return { logits: await rt.readF32(r.logits!), hidden: await rt.readF32(r.hidden) };
  });
}

for (const arch of ARCHS) {
  Deno.test(`gpu forward ${arch}: logits and hidden match float64, with and without LoRA`, async () => {
    const m = fixture(arch);
    const g = GpuModel.upload(rt, m);
    try {
      const lora = randomLora(m);
      const loraT = uploadLora(rt, lora);
      for (const withLora of [false, true]) {
        const got = await gpuForward(g, rowsOf, {
          lora: withLora ? gpuLora(lora.specs, loraT, lora.scale) : undefined,
        });
        const V = m.config.vocab, C = m.config.dim, T = rowsOf[0].length;
        rowsOf.forEach((row, b) => {
          const want = forward(m, row, { lora: withLora ? refLora(lora) : undefined });
          const tol = { rtol: 1e-4, atol: 2e-5 * Math.max(1, absMax(want.logits)) };
          assertClose(got.logits.subarray(b * T * V, (b + 1) * T * V), want.logits, {
            ...tol,
            label: `${arch} logits row ${b} lora=${withLora}`,
          });
          assertClose(got.hidden.subarray(b * T * C, (b + 1) * T * C), want.hidden, {
            rtol: 1e-4,
            atol: 2e-5 * Math.max(1, absMax(want.hidden)),
            label: `${arch} hidden row ${b}`,
          });
          if (withLora && b === 0) {
            const base = forward(m, row);
            const e = relErr(got.logits.subarray(0, T * V), want.logits);
            console.log(
              `  ${arch}: LoRA moves logits by ${
                relErr(want.logits, base.logits).toExponential(2)
              }, GPU error ${e.toExponential(2)}`,
            );
            assert.ok(relErr(want.logits, base.logits) > 1e-3, "LoRA must change the logits");
          }
        });
      }
      loraT.forEach((t) => t.dispose());
    } finally {
      g.dispose();
    }
  });
}

Deno.test("gpu forward: KV cache in pieces and left padding equal the reference", async () => {
  for (const arch of ARCHS) {
    const m = fixture(arch);
    const g = GpuModel.upload(rt, m);
    const V = m.config.vocab;
    const row = rowsOf[0];
    const want = forward(m, row).logits;
    const tol = { rtol: 1e-4, atol: 2e-5 * Math.max(1, absMax(want)) };
    // Pieces 4 + 1 + 4 through a growing cache and through a fixed-capacity one.
    for (const capacity of [undefined, 16]) {
      const cache = new GpuKvCache(m.config, 1, capacity);
      const parts: number[] = [];
      for (const [a, b] of [[0, 4], [4, 5], [5, 9]]) {
        const r = await gpuForward(g, [row.slice(a, b)], { kvCache: cache });
        parts.push(...r.logits);
      }
      assert.equal(cache.length, row.length);
      if (capacity) {
        assert.throws(
          () => g.forward(Int32Array.from(row), { kvCache: cache }),
          /overflow the KV cache's 16 slots/,
        );
      }
      cache.dispose();
      assertClose(parts, want, { ...tol, label: `${arch} cached pieces (capacity ${capacity})` });
    }
    // Two rows of different lengths, left padded: each row's real positions match.
    const short = [12, 5, 40];
    const pad = row.length - short.length;
    const r = await gpuForward(g, [row, [0, 0, 0, 0, 0, 0, ...short]], { leftPad: [0, pad] });
    assertClose(r.logits.subarray(0, row.length * V), want, { ...tol, label: `${arch} row 0` });
    assertClose(r.logits.subarray((row.length + pad) * V), forward(m, short).logits, {
      ...tol,
      label: `${arch} left-padded row`,
    });
    g.dispose();
  }
});

Deno.test("gpu forward: packed segments equal separate sequences; LoRA dropout is seeded", async () => {
  const m = fixture("qwen2");
  const g = GpuModel.upload(rt, m);
  const a = [5, 17, 42, 3], b = [60, 11, 29, 8, 9];
  const seg = Int32Array.from([...a.map(() => 0), ...b.map(() => 1)]);
  const r = await gpuForward(g, [[...a, ...b]], { segIds: seg });
  const want = new Float64Array([...forward(m, a).logits, ...forward(m, b).logits]);
  assertClose(r.logits, want, { rtol: 1e-4, atol: 2e-5 * absMax(want), label: "packed" });

  const lora = randomLora(m);
  const loraT = uploadLora(rt, lora);
  const gl = gpuLora(lora.specs, loraT, lora.scale, 0.5);
  const run = (seed?: number) => gpuForward(g, [a], { lora: gl, dropoutSeed: seed });
  const [d1, d1b, d2, off] = [await run(1), await run(1), await run(2), await run()];
  assert.deepEqual(d1.logits, d1b.logits, "same seed, same masks");
  assert.ok(relErr(d1.logits, d2.logits) > 1e-4, "another seed, other masks");
  assertClose(off.logits, forward(m, a, { lora: refLora(lora) }).logits, {
    rtol: 1e-4,
    atol: 1e-4,
    label: "no seed: no dropout",
  });
  loraT.forEach((t) => t.dispose());
  g.dispose();
});

Deno.test("gpu forward: errors name the problem; nothing leaks", async () => {
  const m = fixture("llama");
  await rt.sync();
  const before = rt.pool.inUse;
  const g = GpuModel.upload(rt, m);
  await gpuForward(g, rowsOf);
  assert.throws(() => g.forward(Int32Array.from([1, 64])), /token id 64 is outside the vocabulary/);
  assert.throws(
    () => g.forward(Int32Array.from([1, 2, 3]), { batch: 2 }),
    /3 ids do not split into 2/,
  );
  assert.throws(
    () => g.forward(Int32Array.from([1, 2]), { offset: 127 }),
    /position 128 is outside the model's 128 positions/,
  );
  const cache = new GpuKvCache(m.config, 1);
  rt.scope(() => {
    g.forward(Int32Array.from([1, 2]), { kvCache: cache });
  });
  assert.throws(
    () => g.forward(Int32Array.from([3]), { kvCache: cache, leftPad: [1] }),
    /leftPad differs from the cache's/,
  );
  assert.throws(
    () => g.forward(Int32Array.from([3]), { kvCache: cache, segIds: Int32Array.from([0]) }),
    /segIds cannot be used with a KV cache/,
  );
  cache.dispose();
  g.dispose();
  await rt.sync();
  assert.equal(rt.pool.inUse, before, "pool bytes after dispose");
});
