/**
 * ropeAt (RoPE of token rows at given positions) against a float64 rotation, forward and
 * VJP (the inverse rotation), for head sizes that take the 8-wide texel kernel (D % 8 = 0,
 * CPU adapters) and the per-element one.
 */
import { ropeAt, ropeAtRef } from "../kernels/autodiff/model_ops.ts";
import { vjp } from "../kernels/autodiff/transforms.ts";
import { assertClose, randn, testRuntime } from "./testing.ts";

const rt = await testRuntime();

for (const D of [16, 6]) {
  Deno.test(`ropeAt, head size ${D}: forward and VJP match the float64 rotation`, async () => {
    const heads = 3, tokens = 5, P = 40, half = D / 2;
    const cos = new Float32Array(P * half), sin = new Float32Array(P * half);
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < half; j++) {
        const a = p * Math.pow(10000, (-2 * j) / D);
        cos[p * half + j] = Math.cos(a);
        sin[p * half + j] = Math.sin(a);
      }
    }
    const pos = new Int32Array([0, 7, 39, 3, 22]);
    const x = randn(tokens * heads * D, D), g = randn(tokens * heads * D, D + 1);
    await rt.scopeAsync(async () => {
      const tx = rt.tensor(x, [tokens, heads * D]);
      const tc = rt.tensor(cos, [P, half]), ts = rt.tensor(sin, [P, half]);
      const tp = rt.tensor(pos, [tokens], "i32");
      const { out, pullback } = vjp((a) => ropeAt(a, tc, ts, tp, D), [tx]);
      assertClose(await out.read(), ropeAtRef(x, D, heads, pos), { label: "forward" });
      const [gx] = pullback(rt.tensor(g, [tokens, heads * D]));
      assertClose(await gx.read(), ropeAtRef(g, D, heads, pos, -1), { label: "VJP" });
    });
  });
}
