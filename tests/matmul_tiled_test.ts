/**
 * The discrete-GPU matmul family (register-blocked tiles, split-K), forced on whatever
 * adapter runs the tests with `family: "tiled"`, against the float64 reference; and the
 * shape independence of its pipelines (and the naive kernel's).
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import {
  matmul,
  type MatmulOptions,
  matmulRef,
  type MatmulShape,
  matmulShape,
} from "../kernels/matmul/matmul.ts";
import { TILE_L, TILE_S, tiledPlan } from "../kernels/matmul/matmul_tiled.ts";
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { caseData, type MatmulCase as Case } from "./matmul_cases.ts";

let seed = 100;

/** Run one case (with and without the fused epilogue); returns dispatches per matmul. */
async function check(rt: Runtime, c: Case, epi: boolean, extra: MatmulOptions = {}) {
  return await rt.scopeAsync(async () => {
    const { bBatch, aData, bData, bias, acc } = caseData(c, seed);
    seed += 4;
    // Empty operands are made, not uploaded (Deno's writeBuffer panics on 0 bytes).
    const up = (d: Float32Array, shape: number[]) =>
      d.length ? rt.tensor(d, shape) : rt.empty(shape);
    const a = up(aData, c.transA ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k]);
    const b = up(bData, c.transB ? [bBatch, c.n, c.k] : [bBatch, c.k, c.n]);
    const s = matmulShape(a, b, c);
    const o: MatmulOptions = {
      transA: c.transA,
      transB: c.transB,
      alpha: epi ? 0.37 : 1,
      family: "tiled",
      ...(c.splitK ? { splitK: c.splitK } : {}),
      ...extra,
    };
    const ep = epi ? { bias: rt.tensor(bias), accumulate: rt.tensor(acc, s.outShape) } : {};
    const before = rt.stats.dispatches;
    const out = matmul(a, b, { ...o, ...ep });
    const dispatches = rt.stats.dispatches - before;
    const ref = matmulRef(aData, bData, s, {
      transA: c.transA,
      transB: c.transB,
      alpha: o.alpha,
      ...(epi ? { bias, accumulate: acc } : {}),
    });
    // Long K: sums of thousands of products, rounded in f32.
    const tol = c.k > 1000 ? { rtol: 1e-4, atol: 2e-3 } : { rtol: 1e-4, atol: 1e-4 };
    assertClose(await out.read(), ref, { ...tol, label: `tiled ${JSON.stringify(c)} epi=${epi}` });
    return dispatches;
  });
}

const every = (c: Omit<Case, "transA" | "transB">): Case[] =>
  [[false, false], [true, false], [false, true], [true, true]].map(([transA, transB]) => ({
    ...c,
    transA,
    transB,
  }));

Deno.test("tiled matmul: every transpose on odd and aligned shapes, batched, fused epilogue", async () => {
  const rt = await testRuntime();
  const cases: Case[] = [
    ...every({ batch: 1, m: 1, n: 1, k: 1 }),
    ...every({ batch: 1, m: 3, n: 5, k: 7 }),
    ...every({ batch: 2, m: 65, n: 130, k: 17 }),
    // Aligned: vec4 loads of both operands in every variant.
    ...every({ batch: 1, m: 64, n: 36, k: 24 }),
    // Aligned and unaligned operands mixed (vec4 loads for one only).
    { batch: 1, m: 20, n: 9, k: 12 },
    { batch: 1, m: 9, n: 20, k: 12, transB: true },
    { batch: 3, m: 33, n: 20, k: 12, sharedB: true },
    { batch: 2, m: 40, n: 28, k: 13, transA: true, sharedB: true },
    { batch: 2, m: 66, n: 50, k: 36, transB: true, sharedB: true },
    { batch: 1, m: 0, n: 5, k: 3 },
    { batch: 1, m: 4, n: 5, k: 0 },
  ];
  for (const c of cases) {
    for (const epi of [false, true]) {
      if (c.m * c.n === 0 && epi) continue; // nothing to fuse into
      await check(rt, c, epi);
    }
  }
});

Deno.test("tiled matmul: large tiles (128x128, 8x8 per thread) on aligned and ragged edges", async () => {
  const rt = await testRuntime();
  // 256 tiles of 128×128 at least (fewer take the small tiles).
  const big: Case[] = [
    { batch: 1, m: 2048, n: 2048, k: 8 },
    { batch: 1, m: 2050, n: 2047, k: 9, transA: true, transB: true },
    { batch: 64, m: 257, n: 129, k: 5, transB: true, sharedB: true },
    // Every transpose with vec4 loads where the layout allows, and with ragged edges.
    ...every({ batch: 64, m: 128, n: 512, k: 16 }),
    ...every({ batch: 64, m: 129, n: 130, k: 12 }),
  ];
  for (const c of big) {
    if (tiledPlan(shapeOf(c), transposes(c)).cfg !== TILE_L) {
      throw new Error(`${JSON.stringify(c)} should take the large tiles`);
    }
    await check(rt, c, c.batch > 1);
  }
  const small = { batch: 1, m: 65, n: 130, k: 17 };
  if (tiledPlan(shapeOf(small), transposes(small)).cfg !== TILE_S) {
    throw new Error("a small output should take the small tiles");
  }
});

/** The shape `matmulShape` would give a case (for planning without tensors). */
function shapeOf(c: Case): MatmulShape {
  return { batch: c.batch, m: c.m, n: c.n, k: c.k, batchB: !c.sharedB, outShape: [c.m, c.n] };
}
const transposes = (c: Case) => ({ transA: !!c.transA, transB: !!c.transB });

Deno.test("tiled matmul: split-K is chosen for long-K thin products and sums every chunk", async () => {
  const rt = await testRuntime();
  // Chosen by shape: the LoRA weight gradient xᵀ·g (K = tokens) and a long-K product.
  const auto: Case[] = [
    { batch: 1, m: 128, n: 16, k: 4096, transA: true },
    { batch: 1, m: 129, n: 64, k: 4097 },
    { batch: 2, m: 33, n: 17, k: 1500, transB: true, sharedB: true },
  ];
  for (const c of auto) {
    for (const epi of [false, true]) {
      const d = await check(rt, c, epi);
      if (d !== 2) {
        throw new Error(`${JSON.stringify(c)}: ${d} dispatches, expected split + reduce`);
      }
    }
  }
  // Forced splits on odd shapes: uneven last chunk, more splits than K slices, K = 1.
  const forced: Case[] = [
    ...every({ batch: 1, m: 5, n: 7, k: 300, splitK: 4 }),
    { batch: 3, m: 9, n: 6, k: 37, splitK: 3, transA: true },
    { batch: 1, m: 3, n: 5, k: 17, splitK: 1000 },
    { batch: 1, m: 3, n: 5, k: 1, splitK: 2 },
  ];
  for (const c of forced) for (const epi of [false, true]) await check(rt, c, epi);
  // A short-K product is not split, and splitK: 1 turns the split off.
  if (await check(rt, { batch: 1, m: 64, n: 32, k: 64 }, true) !== 1) {
    throw new Error("a short-K product was split");
  }
  if (await check(rt, { batch: 1, m: 129, n: 64, k: 4097, splitK: 1 }, false) !== 1) {
    throw new Error("splitK: 1 still split");
  }
});

Deno.test("tiled matmul: in-place accumulate (out = accumulate), with and without split-K", async () => {
  const rt = await testRuntime();
  for (const splitK of [1, 5]) {
    await rt.scopeAsync(async () => {
      const aData = randn(700 * 24, 7), bData = randn(700 * 16, 8), cData = randn(24 * 16, 9);
      const a = rt.tensor(aData, [700, 24]), b = rt.tensor(bData, [700, 16]);
      const c = rt.tensor(cData, [24, 16]);
      matmul(a, b, { transA: true, accumulate: c, out: c, alpha: 2, family: "tiled", splitK });
      const s = matmulShape(a, b, { transA: true });
      const ref = matmulRef(aData, bData, s, { transA: true, alpha: 2, accumulate: cData });
      assertClose(await c.read(), ref, { rtol: 1e-4, atol: 1e-3, label: `splitK ${splitK}` });
    });
  }
});

Deno.test("matmul pipelines are shape-independent: new sizes compile nothing", async () => {
  const rt = await testRuntime();
  for (const family of ["tiled", "naive"] as const) {
    // Warm each pipeline once (aligned and unaligned loads, split and not), then new shapes.
    const warm: Case[] = [
      { batch: 1, m: 8, n: 8, k: 8 },
      { batch: 1, m: 7, n: 5, k: 3 },
      { batch: 1, m: 8, n: 8, k: 4096 },
    ];
    const fresh: Case[] = [
      { batch: 2, m: 12, n: 16, k: 20 },
      { batch: 1, m: 11, n: 6, k: 9 },
      { batch: 3, m: 36, n: 4, k: 44, sharedB: true },
      { batch: 1, m: 13, n: 12, k: 2900 },
    ];
    for (const c of warm) await check(rt, c, true, { family });
    const compiles = rt.stats.compiles;
    for (const c of fresh) await check(rt, c, true, { family });
    if (rt.stats.compiles !== compiles) {
      throw new Error(`${family}: ${rt.stats.compiles - compiles} compiles for new shapes`);
    }
  }
});

Deno.test("tiled matmul: one pipeline, several shapes recorded in one submission", async () => {
  const rt = await testRuntime();
  await rt.scopeAsync(async () => {
    // Same variant and load widths, different sizes: each dispatch reads its own uniform
    // block; nothing is read back until all are recorded.
    const shapes = [[12, 8, 16], [40, 4, 20], [4, 300, 8], [9 * 4, 1024, 12]];
    const runs = shapes.map(([m, k, n], i) => {
      const aData = randn(m * k, 40 + i), bData = randn(k * n, 50 + i);
      const a = rt.tensor(aData, [m, k]), b = rt.tensor(bData, [k, n]);
      const out = matmul(a, b, { family: "tiled", alpha: i + 1 });
      return { out, ref: matmulRef(aData, bData, matmulShape(a, b), { alpha: i + 1 }) };
    });
    for (const [i, r] of runs.entries()) {
      assertClose(await r.out.read(), r.ref, { rtol: 1e-4, atol: 1e-3, label: `shape ${i}` });
    }
  });
});
