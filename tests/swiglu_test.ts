/**
 * The fused SwiGLU (kernels/autodiff/swiglu.ts: silu(a)·b, its backward and tangents one
 * kernel each) against a float64 reference through the harness (forward, JVP, VJP, HVP), and
 * against the composed ops it replaced (silu, mul) — values bit for bit, gradients and
 * Hessian-vector products closely (the kernels follow the composed expressions term for
 * term) — on odd sizes (storage kernels) and multiples of 4 (texel kernels on CPU adapters),
 * with tangents on one input only as well.
 */
import { checkOp } from "./autodiff_harness.ts";
import { assertClose, randn, testRuntime } from "./testing.ts";
import { swiglu } from "../kernels/autodiff/swiglu.ts";
import { mul, silu, sumAll } from "../kernels/autodiff/basic.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { swigluRef } from "../kernels/ops/swiglu_kernels.ts";

const rt = await testRuntime();

for (const shape of [[3, 5], [4, 8], [1, 1]]) {
  const name = `swiglu [${shape}]`;
  Deno.test(`${name}: forward, JVP, VJP, HVP = float64`, () =>
    checkOp(rt, {
      name,
      shapes: [shape, shape],
      range: () => [-3, 3],
      gpu: swiglu,
      ref: swigluRef,
    }, 7 + shape[1]));

  Deno.test(`${name}: = the composed silu·mul (values, ∇, H·v; one-sided tangents)`, async () => {
    const n = shape[0] * shape[1];
    await rt.scopeAsync(async () => {
      const a = rt.tensor(randn(n, 1, -3, 3), shape), b = rt.tensor(randn(n, 2, -2, 2), shape);
      const c = rt.tensor(randn(n, 3, 0.2, 1), shape);
      const va = rt.tensor(randn(n, 4), shape), vb = rt.tensor(randn(n, 5), shape);
      const composed = (x: Tensor, y: Tensor) => mul(silu(x), y);
      const loss = (f: typeof swiglu) => (x: Tensor, y: Tensor) => {
        const z = f(x, y);
        return sumAll(mul(mul(mul(z, z), z), c));
      };
      assertClose(await rt.readF32(swiglu(a, b)), await rt.readF32(composed(a, b)), {
        rtol: 0,
        atol: 0,
        label: "value (bit for bit)",
      });
      const read = (ts: Tensor[]) => Promise.all(ts.map((t) => rt.readF32(t)));
      const gf = await read(grad(loss(swiglu), [a, b]).grads);
      const gc = await read(grad(loss(composed), [a, b]).grads);
      for (const j of [0, 1]) assertClose(gf[j], gc[j], { rtol: 1e-5, atol: 1e-6, label: `∇${j}` });
      for (const v of [[va, vb], [va, undefined], [undefined, vb]]) {
        const hf = await read(hvp(loss(swiglu), [a, b], v).hvps);
        const hc = await read(hvp(loss(composed), [a, b], v).hvps);
        for (const j of [0, 1]) {
          assertClose(hf[j], hc[j], {
            rtol: 1e-4,
            atol: 1e-5,
            label: `H·v${j} (${!!v[0]}, ${!!v[1]})`,
          });
        }
      }
    });
  });
}
