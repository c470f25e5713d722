import assert from "node:assert/strict";
import { assertClose, testRuntime } from "./testing.ts";
import { mapN } from "../kernels/ops/elementwise.ts";
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

Deno.test("runtime: uniform arena — many blocks per submit, across submits, chunks recycled", async () => {
  const rt = await testRuntime();
  const x = rt.tensor(new Float32Array(300).map((_, i) => i / 100));
  // 3 × 400 dispatches of a uniform-driven kernel (size + params in a uniform block), each
  // with a different parameter: any slot read at a wrong offset or overwritten while in
  // flight shows up as a wrong value.
  const before = { ...rt.stats };
  for (let round = 0; round < 3; round++) {
    const outs = [];
    for (let i = 0; i < 400; i++) outs.push(mapN("a * p.x + p.y", [x], { params: [i, -i] }));
    const got = await Promise.all([outs[0], outs[199], outs[399]].map((t) => t.read()));
    for (const [k, i] of [[0, 0], [1, 199], [2, 399]]) {
      assertClose(got[k], Array.from({ length: 300 }, (_, j) => (j / 100) * i - i), { atol: 1e-4 });
    }
    outs.forEach((t) => t.dispose());
  }
  assert.equal(rt.stats.dispatches - before.dispatches, 1200);
  assert.equal(rt.stats.waits - before.waits, 3 * 3, "one wait per read, none per submit");
  // 1,200 blocks × 256 B = 19 × 64 KiB if nothing were recycled; each read recycles the
  // chunks of the submits it waited for.
  await rt.sync();
  assert.ok(rt.uniformChunks <= 12, `${rt.uniformChunks} uniform chunks`);
  x.dispose();
});

Deno.test("runtime: a uniform slot kept past its chunk's recycling is refused", async () => {
  const rt = await testRuntime();
  const stale = rt.uniform(new Uint32Array([1, 2, 3, 4]));
  const x = rt.tensor([1, 2, 3]);
  // Fill the rest of the chunk, submit, let the completion recycle it.
  for (let i = 0; i < 300; i++) rt.uniform(new Uint32Array([i]));
  mapN("a + 1.0", [x]).dispose();
  await rt.sync();
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 600; i++) rt.uniform(new Uint32Array([i])); // reuses recycled chunks
  mapN("a + 1.0", [x]).dispose();
  await rt.sync();
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; i < 600; i++) rt.uniform(new Uint32Array([i]));
  const spec = { name: "stale_probe", code: "", bindings: ["uniform"] as const };
  assert.throws(() => rt.dispatch(spec, [stale], [1]), /uniform slot was recycled/);
  x.dispose();
});

Deno.test("runtime: the profiler counts every dispatch past one query set (2,048)", async (t) => {
  const rt = await testRuntime();
  if (!rt.hasTimestamps) {
    t.step({ name: "skip: adapter has no timestamp-query", ignore: true, fn: () => {} });
    return;
  }
  const x = rt.tensor([1, 2, 3, 4, 5]);
  rt.enableProfiling();
  for (let i = 0; i < 2500; i++) mapN("a * 2.0", [x]).dispose();
  rt.scope(() => mapN("a + 3.0", [x]));
  const profile = await rt.collectProfile();
  assert.equal(profile.get("map(a * 2.0)")?.calls, 2500);
  assert.equal(profile.get("map(a + 3.0)")?.calls, 1);
  assert.ok([...profile.values()].every((e) => e.ns >= 0));
  x.dispose();
});

Deno.test("runtime: the profiler times shape-specialised kernels per shape on request", async (t) => {
  const rt = await testRuntime();
  if (!rt.hasTimestamps) {
    t.step({ name: "skip: adapter has no timestamp-query", ignore: true, fn: () => {} });
    return;
  }
  const spec = (m: number) => ({
    name: "probe_family",
    detail: `${m}x1`,
    // Sizes are baked into such kernels' code: one pipeline per shape.
    code: `const M = ${m}u;\n@compute @workgroup_size(1) fn main() {}`,
    bindings: [] as const,
  });
  const a = spec(3), b = spec(5);
  for (const detail of [false, true]) {
    rt.enableProfiling({ detail });
    rt.dispatch(a, [], [1]);
    rt.dispatch(a, [], [1]);
    rt.dispatch(b, [], [1]);
    const profile = await rt.collectProfile();
    rt.disableProfiling();
    const calls = Object.fromEntries([...profile].map(([k, e]) => [k, e.calls]));
    assert.deepEqual(
      calls,
      detail ? { "probe_family 3x1": 2, "probe_family 5x1": 1 } : { probe_family: 3 },
    );
  }
});
