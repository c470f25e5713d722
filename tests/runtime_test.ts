import assert from "node:assert/strict";
import { testRuntime } from "./testing.ts";
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

Deno.test("runtime: windows split a tensor into aligned, bindable row ranges", async () => {
  const rt = await testRuntime();
  const t = rt.zeros([10, 33]);
  const w = rt.windows(t, 33);
  assert.equal(w.length, 1);
  assert.deepEqual([w[0].offset, w[0].first, w[0].count], [0, 0, 10]);
  // Pretend the binding limit is small: windows must tile the rows, aligned, within the limit.
  const small = Object.create(rt, { maxBindingBytes: { value: 1024 } });
  const ws = small.windows(t, 33) as ReturnType<typeof rt.windows>;
  let rows = 0;
  for (const x of ws) {
    assert.equal(x.offset % rt.device.limits.minStorageBufferOffsetAlignment, 0);
    assert.ok(x.size <= Math.max(1024, 33 * 4 * 256));
    assert.equal(x.first, rows);
    rows += x.count;
  }
  assert.equal(rows, 10);
  t.dispose();
});
