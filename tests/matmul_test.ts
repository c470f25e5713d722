import { assertClose, randn, testRuntime } from "./testing.ts";
import { matmul, matmulRef, matmulShape } from "../kernels/matmul/matmul.ts";
import { sgSupports } from "../kernels/matmul/matmul_subgroup.ts";
import { caseData, type MatmulCase } from "./matmul_cases.ts";

// Odd shapes: edges in every dimension, K tails of 4 (and of 1..7 for Aᵀ·B), N = 1, M = 1.
const cases: MatmulCase[] = [
  { batch: 1, m: 5, n: 7, k: 3 },
  { batch: 1, m: 37, n: 20, k: 12 },
  { batch: 2, m: 70, n: 36, k: 44 },
  { batch: 1, m: 1, n: 16, k: 8 },
  { batch: 3, m: 33, n: 24, k: 16, sharedB: true },
  { batch: 1, m: 40, n: 28, k: 13, transA: true },
  { batch: 2, m: 12, n: 8, k: 37, transA: true },
  { batch: 1, m: 9, n: 1, k: 13, transA: true },
  { batch: 1, m: 35, n: 19, k: 20, transB: true },
  { batch: 2, m: 66, n: 50, k: 36, transB: true, sharedB: true },
  { batch: 1, m: 8, n: 1, k: 8, transB: true },
  { batch: 3, m: 4, n: 6, k: 17, transB: true },
  { batch: 1, m: 6, n: 5, k: 7, transA: true, transB: true },
  // Rows that pick 4 and 2 subgroups per workgroup on subgroup adapters (sgConfigFor: 128 and
  // 64 rows per workgroup; the shapes above take one subgroup).
  { batch: 1, m: 128, n: 20, k: 12 },
  { batch: 2, m: 192, n: 9, k: 16, transB: true },
  { batch: 1, m: 64, n: 8, k: 21, transA: true },
  { batch: 1, m: 256, n: 12, k: 6, transA: true },
];

Deno.test("matmul: every variant and family against the float64 reference on odd shapes", async () => {
  const rt = await testRuntime();
  let seed = 1, subgroupRuns = 0, textureRuns = 0;
  for (const c of cases) {
    for (const family of ["naive", "subgroup", "texture", "tiled"] as const) {
      for (const epi of [false, true]) {
        const variant = c.transA ? (c.transB ? undefined : "tn") : c.transB ? "nt" : "nn";
        rt.scope(() => {}); // keep the pool tidy between cases
        await rt.scopeAsync(async () => {
          const { bBatch, aData, bData, bias, acc } = caseData(c, seed);
          seed += 4;
          const a = rt.tensor(aData, c.transA ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k]);
          const b = rt.tensor(bData, c.transB ? [bBatch, c.n, c.k] : [bBatch, c.k, c.n]);
          const s = matmulShape(a, b, c);
          // The subgroup family is written for 8-lane subgroups (lavapipe); NVIDIA's are 32 wide
          // and matmul refuses it there, so this skip must match matmul's own condition.
          const sgOk = rt.hasSubgroups && rt.subgroupSize === 8 && variant &&
            sgSupports(variant, s);
          if ((family === "subgroup" || family === "texture") && !sgOk) return;
          const o = { transA: c.transA, transB: c.transB, alpha: epi ? 0.5 : 1, family };
          const extra = epi
            ? { bias: rt.tensor(bias), accumulate: rt.tensor(acc, s.outShape) }
            : {};
          const out = matmul(a, b, { ...o, ...extra });
          if (family === "subgroup") subgroupRuns++;
          if (family === "texture") textureRuns++;
          const ref = matmulRef(aData, bData, s, {
            ...o,
            ...(epi ? { bias, accumulate: acc } : {}),
          });
          assertClose(await out.read(), ref, {
            rtol: 1e-4,
            atol: 1e-4,
            label: `${family} ${JSON.stringify(c)} epi=${epi}`,
          });
        });
      }
    }
  }
  const rt2 = rt;
  if (rt2.hasSubgroups && rt2.subgroupSize === 8 && Math.min(subgroupRuns, textureRuns) < 16) {
    throw new Error(
      `only ${subgroupRuns} subgroup and ${textureRuns} texture runs: a fast family went untested`,
    );
  }
});

Deno.test("matmul: in-place accumulate (C += A·B) with out = accumulate", async () => {
  const rt = await testRuntime();
  await rt.scopeAsync(async () => {
    const aData = randn(48 * 32, 3), bData = randn(32 * 16, 4), cData = randn(48 * 16, 5);
    const a = rt.tensor(aData, [48, 32]), b = rt.tensor(bData, [32, 16]);
    const c = rt.tensor(cData, [48, 16]);
    matmul(a, b, { accumulate: c, out: c });
    const s = matmulShape(a, b);
    assertClose(await c.read(), matmulRef(aData, bData, s, { accumulate: cData }), {
      rtol: 1e-4,
      atol: 1e-4,
    });
  });
});

Deno.test("matmul: texture family restages its textures between matmuls of one submission", async () => {
  const rt = await testRuntime();
  if (!(rt.hasSubgroups && rt.subgroupSize === 8)) return; // the texture family needs 8 lanes
  await rt.scopeAsync(async () => {
    // Same shapes (same staging textures), recorded back to back with no read between;
    // the third product reads the first one's result.
    const [m, k, n] = [40, 4104, 12]; // A spans two texture rows and a part of a third
    const data = [1, 2].map((s) => randn(m * k, s));
    const bData = [5, 6].map((s) => randn(k * n, s));
    const a1 = rt.tensor(data[0], [m, k]), a2 = rt.tensor(data[1], [m, k]);
    const b1 = rt.tensor(bData[0], [k, n]), b2 = rt.tensor(bData[1], [k, n]);
    const sq = rt.tensor(randn(n * n, 7), [n, n]);
    const c1 = matmul(a1, b1, { family: "texture" });
    const c2 = matmul(a2, b2, { family: "texture" });
    const c3 = matmul(c1, sq, { family: "texture" });
    const s = matmulShape(a1, b1);
    const r1 = matmulRef(data[0], bData[0], s), r2 = matmulRef(data[1], bData[1], s);
    const tol = { rtol: 1e-4, atol: 1e-3 };
    assertClose(await c1.read(), r1, { ...tol, label: "first" });
    assertClose(await c2.read(), r2, { ...tol, label: "second" });
    const sqData = await sq.read();
    assertClose(await c3.read(), matmulRef(r1, sqData, matmulShape(c1, sq)), {
      ...tol,
      label: "dependent",
    });
    // The staging textures are held outside the pool and counted in rt.texelBytes: A's
    // 41,040 texels take 41 rows of 1,024, in a texture of 64 rows (16 bytes a texel).
    if (rt.texelBytes < 64 * 1024 * 16) {
      throw new Error(`rt.texelBytes ${rt.texelBytes} misses the staging textures`);
    }
  });
});
