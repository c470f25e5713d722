import assert from "node:assert/strict";
import { assertClose, randn, testRuntime } from "./testing.ts";
import { matmul, matmulRef, matmulShape } from "../kernels/matmul/matmul.ts";
import { sizeClass } from "../kernels/runtime/pool.ts";

Deno.test("runtime: upload and read back f32/i32", async () => {
  const rt = await testRuntime();
  const f = rt.tensor([1.5, -2, 3]);
  assert.deepEqual([...await f.read()], [1.5, -2, 3]);
  const i = rt.tensor(new Int32Array([7, -8, 9, 10]), [2, 2]);
  assert.deepEqual([...await i.read()], [7, -8, 9, 10]);
  f.dispose();
  i.dispose();
});

Deno.test("runtime: scope frees everything but the result, pool reuses buffers", async () => {
  const rt = await testRuntime();
  const before = rt.pool.inUse;
  const kept = rt.scope(() => {
    rt.zeros([1000]);
    rt.zeros([1000]);
    return { x: rt.zeros([10]) };
  });
  assert.equal(rt.pool.inUse - before, sizeClass(40));
  const allocs = rt.pool.allocations;
  rt.scope(() => rt.zeros([1000]) && undefined);
  assert.equal(rt.pool.allocations, allocs, "a freed 4000-byte buffer is reused");
  kept.x.dispose();
  assert.equal(rt.pool.inUse, before);
  assert.throws(() => kept.x.buf, /used after dispose/);
});

Deno.test("runtime: size classes waste ≤ 12.5% above 1 KiB", () => {
  for (const b of [1, 17, 1000, 1025, 4097, 123457, 9_999_999]) {
    const c = sizeClass(b);
    assert.ok(c >= b);
    if (b > 1024) assert.ok(c <= b * 1.125 + 16, `${b} → ${c}`);
  }
});

Deno.test("matmul (naive): odd shapes, transposes, bias, alpha, accumulate, batch", async () => {
  const rt = await testRuntime();
  const cases = [
    { batch: 1, m: 5, n: 7, k: 3, transA: false, transB: false },
    { batch: 2, m: 9, n: 1, k: 13, transA: true, transB: false },
    { batch: 3, m: 4, n: 6, k: 17, transA: false, transB: true },
  ];
  let seed = 1;
  for (const c of cases) {
    const aData = randn(c.batch * c.m * c.k, seed++);
    const bData = randn(c.batch * c.n * c.k, seed++);
    const bias = randn(c.n, seed++);
    const acc = randn(c.batch * c.m * c.n, seed++);
    const a = rt.tensor(aData, c.transA ? [c.batch, c.k, c.m] : [c.batch, c.m, c.k]);
    const b = rt.tensor(bData, c.transB ? [c.batch, c.n, c.k] : [c.batch, c.k, c.n]);
    const biasT = rt.tensor(bias);
    const accT = rt.tensor(acc, [c.batch, c.m, c.n]);
    const o = { transA: c.transA, transB: c.transB, alpha: 0.5 };
    const out = matmul(a, b, { ...o, bias: biasT, accumulate: accT });
    const s = matmulShape(a, b, o);
    assertClose(await out.read(), matmulRef(aData, bData, s, { ...o, bias, accumulate: acc }), {
      label: JSON.stringify(c),
    });
    for (const t of [a, b, biasT, accT, out]) t.dispose();
  }
});
