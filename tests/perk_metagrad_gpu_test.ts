/**
 * The GPU sweep backend (AdamW kernels, learned rates kept on the GPU) gives the same
 * meta-gradient as the float64 reference on the toy problem. Gradients and
 * Hessian-vector products come from float64 on the host, so only the sweep — AdamW
 * steps, adjoints, learning-rate reductions, accumulation — is compared.
 */
import {
  type InnerObjective,
  metaGradient,
  type OuterObjective,
} from "../pipeline/perk/metagrad.ts";
import { gpuBackend } from "../pipeline/perk/metagrad_gpu.ts";
import { metaGradientRef, type Params } from "../pipeline/perk/metagrad_ref.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { assertClose, testRuntime } from "./testing.ts";
import { toy } from "./perk_toy.ts";

Deno.test("GPU meta-gradient sweep = float64 reference (N=4; T=4, T=2)", async () => {
  const rt = await testRuntime();
  const P = toy(5);
  const N = 4, J = 2;
  const lr = Array.from({ length: N }, (_, n) => [0.05 + 0.01 * n, 0.07 - 0.01 * n]);
  for (const T of [4, 2]) {
    const ref = await metaGradientRef(P.inner, P.outer, P.theta0, lr, P.phi, {
      steps: N,
      retained: T,
    });
    await rt.scopeAsync(async () => {
      const down = (ts: Tensor[]): Promise<Params> =>
        Promise.all(ts.map(async (t) => Float64Array.from(await t.read())));
      const up = (xs: Params) => xs.map((x) => rt.tensor(Float32Array.from(x)));
      const inner: InnerObjective<Tensor, Tensor[]> = {
        grad: async (theta) => up(P.inner.grad(await down(theta), P.phi)),
        async hvp(theta, v) {
          const r = P.inner.hvp(await down(theta), P.phi, await down(v));
          return { theta: up(r.theta), phi: [rt.tensor(Float32Array.from(r.phi))] };
        },
      };
      const outer: OuterObjective<Tensor> = {
        async valueAndGrad(theta) {
          const r = await P.outer.valueAndGrad(await down(theta));
          return { loss: r.loss, grad: up(r.grad) };
        },
      };
      const lrT = rt.tensor(Float32Array.from(lr.flat()));
      const lrBar = rt.zeros([N * J]);
      const res = await metaGradient(gpuBackend(lrT, lrBar, J), inner, outer, up(P.theta0), {
        steps: N,
        retained: T,
      });
      const opts = { rtol: 2e-3, atol: 1e-5 };
      for (let j = 0; j < J; j++) {
        assertClose(await res.theta0[j].read(), ref.theta0[j], {
          ...opts,
          label: `θ̄0[${j}] T=${T}`,
        });
      }
      assertClose(await lrBar.read(), ref.lr.flat(), { ...opts, label: `lr̄ T=${T}` });
      assertClose(await res.phi![0].read(), ref.phi, { ...opts, label: `φ̄ T=${T}` });
    });
  }
});
