import { assertClose, randn, testRuntime } from "./testing.ts";
import { adamwAdjoint, adamwStep } from "../kernels/optim/adamw.ts";
import { adamwAdjointRef, adamwStepRef, INNER_ADAMW } from "../kernels/optim/adamw_math.ts";

Deno.test("AdamW step and adjoint kernels match the float64 reference (odd sizes, v = 0 lanes)", async () => {
  const rt = await testRuntime();
  for (const [n, t] of [[1, 1], [67, 2], [300, 3]]) {
    const p = randn(n, 1), m = randn(n, 2, -0.1, 0.1), v = randn(n, 3, 0, 0.01);
    const g = randn(n, 4);
    if (t === 1) m.fill(0), v.fill(0);
    if (n > 1) g[0] = 0, m[0] = 0, v[0] = 0; // a lane whose gradients were all zero
    const pb = randn(n, 5), mb = randn(n, 6), vb = randn(n, 7);
    const lrs = Float32Array.of(0.5, 3e-3, 0.2);
    await rt.scopeAsync(async () => {
      const T = (x: Float32Array) => rt.tensor(x);
      const lr = T(lrs), lrBar = rt.tensor([0.25, 0, 0]);
      const s = adamwStep(T(p), T(m), T(v), T(g), lr, 1, t, INNER_ADAMW);
      const ref = adamwStepRef(p, m, v, g, lrs[1], t);
      assertClose(await s.p.read(), ref.p, { label: "p'" });
      assertClose(await s.m.read(), ref.m, { label: "m'" });
      assertClose(await s.v.read(), ref.v, { label: "v'" });
      const a = adamwAdjoint(
        T(p),
        T(m),
        T(v),
        T(g),
        lr,
        1,
        t,
        INNER_ADAMW,
        T(pb),
        T(mb),
        T(vb),
        lrBar,
      );
      const ar = adamwAdjointRef(p, m, v, g, lrs[1], t, pb, mb, vb);
      assertClose(await a.p.read(), ar.p, { label: "p̄" });
      assertClose(await a.m.read(), ar.m, { rtol: 1e-3, atol: 1e-4, label: "m̄" });
      assertClose(await a.v.read(), ar.v, { rtol: 1e-3, atol: 1e-2, label: "v̄" });
      assertClose(await a.g.read(), ar.g, { rtol: 1e-3, atol: 1e-4, label: "ḡ" });
      assertClose(await lrBar.read(), [0.25, ar.lr, 0], { rtol: 1e-4, atol: 1e-4, label: "lr̄" });
    });
  }
});
