/**
 * The kernel-spec builder (kernels/runtime/kernel.ts `kernel`): binding order and kinds, the
 * WGSL header it writes (uniform struct, bindings, lane id and bounds guard), and the typed
 * uniform packer's layout (u32/i32/f32 words; vectors and arrays on 16-byte boundaries), on
 * the host; then one generated kernel run on the device.
 */
import { kernel } from "../kernels/runtime/kernel.ts";
import { testRuntime } from "./testing.ts";

function assertEquals(a: unknown, b: unknown): void {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  if (x !== y) throw new Error(`${x} ≠ ${y}`);
}
function assertStringIncludes(s: string, part: string): void {
  if (!s.includes(part)) throw new Error(`missing ${JSON.stringify(part)} in:\n${s}`);
}

Deno.test("kernel(): bindings in declaration order, header and lane guard", () => {
  const k = kernel({
    name: "t",
    inputs: { A: "f32", T: "texture", I: "i32" },
    outputs: { O: "vec4f" },
    uniforms: { n: "u32", s: "f32" },
    wg: 32,
    id: "i",
    lanes: "u.n",
    body: "  O[i] = vec4f(A[i] * u.s);",
  });
  assertEquals(k.spec.bindings, ["read", "texture", "read", "read_write", "uniform"]);
  assertEquals(k.wg, 32);
  for (
    const line of [
      "struct U { n: u32, s: f32 }",
      "@group(0) @binding(0) var<storage, read> A: array<f32>;",
      "@group(0) @binding(1) var T: texture_2d<f32>;",
      "@group(0) @binding(2) var<storage, read> I: array<i32>;",
      "@group(0) @binding(3) var<storage, read_write> O: array<vec4f>;",
      "@group(0) @binding(4) var<uniform> u: U;",
      "@compute @workgroup_size(32)",
      "let i = (wid.x + wid.y * nwg.x) * 32u + lid;",
      "if (i >= u.n) { return; }",
    ]
  ) assertStringIncludes(k.spec.code, line);
  // No uniforms: no struct, no uniform binding.
  const bare = kernel({
    name: "b",
    outputs: { O: "f32" },
    body: "@compute @workgroup_size(1)\nfn main() { O[0] = 1.0; }",
  });
  assertEquals(bare.spec.bindings, ["read_write"]);
  assertEquals(bare.spec.code.includes("struct U"), false);
});

Deno.test("kernel(): the uniform packer types each word and aligns vectors to 16 bytes", () => {
  const k = kernel({
    name: "p",
    outputs: { O: "f32" },
    uniforms: { n: "u32", k: "i32", x: "f32", p: "vec4f", shape: "array<vec4u, 2>", last: "u32" },
    lanes: "u.n",
    body: "  O[id] = 0.0;",
  });
  const w = k.pack({ n: 7, k: -2, x: 0.5, p: [1.5, -1], shape: [3, 4, 5], last: 9 });
  // n k x _ | p (4) | shape (8) | last _ _ _
  assertEquals(w.length, 20);
  const i = new Int32Array(w.buffer), f = new Float32Array(w.buffer);
  assertEquals([w[0], i[1], f[2], w[3]], [7, -2, 0.5, 0]);
  assertEquals([...f.slice(4, 8)], [1.5, -1, 0, 0]);
  assertEquals([...w.slice(8, 16)], [3, 4, 5, 0, 0, 0, 0, 0]);
  assertEquals(w[16], 9);
  // A short block is padded to 16 bytes.
  const one = kernel({
    name: "o",
    outputs: { O: "f32" },
    uniforms: { n: "u32" },
    lanes: "u.n",
    body: "",
  });
  assertEquals(one.pack({ n: 3 }).length, 4);
});

Deno.test("kernel(): a generated lane kernel runs (guarded past n, typed uniforms)", async () => {
  const rt = await testRuntime();
  await rt.scopeAsync(async () => {
    const k = kernel({
      name: "axpb",
      inputs: { X: "f32" },
      outputs: { Y: "f32" },
      uniforms: { n: "u32", a: "f32", b: "i32" },
      lanes: "u.n",
      body: "  Y[id] = u.a * X[id] + f32(u.b);",
    });
    const n = 70;
    const x = rt.tensor(Float32Array.from({ length: n + 2 }, (_, i) => i), [n + 2]);
    const y = rt.zeros([n + 2]);
    k.run(rt, [x, y], { n, a: 0.5, b: -3 }, n);
    const out = await rt.readF32(y);
    assertEquals([...out], Array.from({ length: n + 2 }, (_, i) => (i < n ? 0.5 * i - 3 : 0)));
  });
});
