/**
 * The fused RMSNorm (kernels/autodiff/norm.ts, one dispatch per forward / tangent / gradient /
 * gradient tangent) against float64 references and the composed ops it replaced, on odd
 * shapes: forward values, the gradients of x and w elementwise against the closed form, and
 * the Hessian-vector product as PERK takes it (w frozen: tangents on x only, and on the
 * cotangent) against central differences of the float64 gradient. The harness cases in
 * autodiff_ops_test.ts check the rule with tangents on w as well.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import { mul, sumAll } from "../kernels/autodiff/basic.ts";
import { rmsNorm, rmsNormComposed } from "../kernels/autodiff/nn.ts";
import { type A, f64 } from "./f64.ts";
import { rmsNormRef, rmsNormVjpRef } from "../kernels/ops/norm_kernels.ts";

const rt = await testRuntime();

const SHAPES: [number, number][] = [[5, 7], [3, 131], [1, 64], [7, 1], [2, 256]];

for (const [rows, C] of SHAPES) {
  Deno.test(`fused rmsNorm (${rows}, ${C}): forward and gradients = float64, = composed`, async () => {
    const eps = 1e-5;
    const x = randn(rows * C, rows * 31 + C, -2, 2), w = randn(C, C + 7, 0.5, 1.5);
    const c = randn(rows * C, rows + C * 3);
    const ref = rmsNormRef(f64(x), C, f64(w), eps);
    const vjp = rmsNormVjpRef(f64(x), C, f64(w), f64(c), eps);
    await rt.scopeAsync(async () => {
      const X = rt.tensor(x, [rows, C]), W = rt.tensor(w, [C]), Ct = rt.tensor(c, [rows, C]);
      for (const [name, f] of [["fused", rmsNorm], ["composed", rmsNormComposed]] as const) {
        const y = await rt.readF32(f(X, W, eps));
        assertClose(y, ref, { rtol: 1e-5, atol: 1e-5, label: `${name} forward` });
        // L = ⟨c, y⟩: ∇L is the VJP of c.
        const g = grad((a, b) => sumAll(mul(f(a, b, eps), Ct)), [X, W]);
        const gx = await rt.readF32(g.grads[0]), gw = await rt.readF32(g.grads[1]);
        assertClose(gx, vjp.x, { rtol: 1e-4, atol: 1e-5, label: `${name} x̄` });
        assertClose(gw, vjp.w, { rtol: 1e-4, atol: 1e-4, label: `${name} w̄` });
      }
    });
  });
}

for (const [rows, C] of SHAPES) {
  Deno.test(`fused rmsNorm (${rows}, ${C}): HVP with w frozen = differences of the float64 gradient`, async () => {
    const eps = 1e-5;
    const x = randn(rows * C, rows * 17 + C, -2, 2), w = randn(C, C + 3, 0.5, 1.5);
    const v = randn(rows * C, rows * 5 + C);
    const c = randn(rows * C, rows + C * 11, 0.2, 1);
    // L(x) = Σ c·y³ (y = rmsNorm(x, w)): ∇L = VJP of 3c·y²; H·v by central differences.
    const gradL = (xs: A) => {
      const y = rmsNormRef(xs, C, f64(w), eps);
      return rmsNormVjpRef(xs, C, f64(w), y.map((t, i) => 3 * c[i] * t * t), eps).x;
    };
    const h = 1e-5;
    const gp = gradL(f64(x).map((t, i) => t + h * v[i]));
    const gm = gradL(f64(x).map((t, i) => t - h * v[i]));
    const want = gp.map((t, i) => (t - gm[i]) / (2 * h));
    await rt.scopeAsync(async () => {
      const X = rt.tensor(x, [rows, C]), W = rt.tensor(w, [C]), Ct = rt.tensor(c, [rows, C]);
      const V = rt.tensor(v, [rows, C]);
      for (const [name, f] of [["fused", rmsNorm], ["composed", rmsNormComposed]] as const) {
        const loss = (a: typeof X) => {
          const y = f(a, W, eps);
          return sumAll(mul(mul(mul(y, y), y), Ct));
        };
        const r = hvp(loss, [X], [V]);
        const got = await rt.readF32(r.hvps[0]);
        const scale = Math.max(...want.map(Math.abs));
        assertClose(got, want, { rtol: 2e-3, atol: 2e-4 * scale, label: `${name} H·v` });
      }
    });
  });
}
