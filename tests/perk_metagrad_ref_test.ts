/**
 * The reference meta-gradient (pipeline/perk/metagrad_ref.ts) against central finite
 * differences of the whole outer loss, inner loop included, on a small logistic problem
 * whose token weights depend on both θ and φ (as PERK's weighting model does).
 */
import assert from "node:assert/strict";
import { innerLoopRef, metaGradientRef, type Params } from "../pipeline/perk/metagrad_ref.ts";
import { adamwAdjointRef, adamwStepRef } from "../kernels/optim/adamw_math.ts";
import { toy } from "./perk_toy.ts";

const N = 4;
const lr0 = () => Array.from({ length: N }, (_, n) => [0.05 + 0.01 * n, 0.07 - 0.01 * n]);

for (const [T, cut] of [[4, false], [2, false], [0, false], [2, true]] as const) {
  Deno.test(`PERK reference meta-gradient = finite differences (N=4, T=${T}${cut ? ", cut" : ""})`, async () => {
    const P = toy(11);
    const lr = lr0();
    const outerAfter = async (theta0: Params, lrs: number[][], phi: Float64Array) =>
      P.outerLoss((await innerLoopRef(P.inner, theta0, lrs, phi, N)).thetas[N]);
    const res = await metaGradientRef(P.inner, P.outer, P.theta0, lr, P.phi, {
      steps: N,
      retained: T,
      cut,
    });
    const eps = 1e-6;
    const fd = async (f: (e: number) => number | Promise<number>) =>
      ((await f(eps)) - (await f(-eps))) / (2 * eps);
    const near = (num: number, ana: number, label: string) =>
      assert.ok(Math.abs(num - ana) <= 1e-6 + 1e-5 * Math.abs(num), `${label}: ${ana} vs ${num}`);
    type Loss = (theta0: Params, lrs: number[][], phi: Float64Array) => number | Promise<number>;
    // Every entry of θ₀'s meta-gradient against finite differences of `loss`.
    const theta0VsFd = async (loss: Loss) => {
      const th0 = P.flat(P.theta0);
      for (let k = 0; k < th0.length; k++) {
        const num = await fd((e) =>
          loss(P.split(th0.map((x, i) => (i === k ? x + e : x))), lr, P.phi)
        );
        near(num, P.flat(res.theta0)[k], `θ0[${k}]`);
      }
    };
    if (T === N) {
      // Exact: every meta-parameter group against finite differences.
      await theta0VsFd(outerAfter);
      for (let n = 0; n < N; n++) {
        for (let j = 0; j < 2; j++) {
          const num = await fd((e) =>
            outerAfter(
              P.theta0,
              lr.map((row, a) => row.map((x, b) => (a === n && b === j ? x + e : x))),
              P.phi,
            )
          );
          near(num, res.lr[n][j], `lr[${n}][${j}]`);
        }
      }
      for (let k = 0; k < P.phi.length; k++) {
        const num = await fd((e) =>
          outerAfter(P.theta0, lr, P.phi.map((x, i) => (i === k ? x + e : x)))
        );
        near(num, res.phi[k], `φ[${k}]`);
      }
    } else {
      // Truncated: equals the exact gradient of the same loss with g_n (n < N−T) frozen.
      // Finite differences of a loss in which early gradients are constants computed at
      // the unperturbed point reproduce exactly that.
      const base = await innerLoopRef(P.inner, P.theta0, lr, P.phi, N);
      const frozen = (theta0: Params, lrs: number[][], phi: Float64Array) => {
        let th: Params = theta0;
        let m: Params = th.map((t) => new Float64Array(t.length));
        let v: Params = m.map((t) => t.slice());
        for (let n = 0; n < N; n++) {
          const keep = n >= N - T;
          if (!keep && cut) {
            // Path cut: θ moves by the unperturbed step's displacement.
            th = th.map((p, j) =>
              p.map((x, i) => x + base.thetas[n + 1][j][i] - base.thetas[n][j][i])
            );
            m = base.ms[n + 1];
            v = base.vs[n + 1];
            continue;
          }
          const g = keep ? P.inner.grad(th, phi) : base.gs[n];
          const s = th.map((p, j) => adamwStepRef(p, m[j], v[j], g[j], lrs[n][j], n + 1));
          th = s.map((x) => x.p);
          m = s.map((x) => x.m);
          v = s.map((x) => x.v);
        }
        return P.outerLoss(th);
      };
      await theta0VsFd(frozen);
      for (let n = 0; n < N; n++) {
        const num = await fd((e) =>
          frozen(
            P.theta0,
            lr.map((row, a) => row.map((x, b) => (a === n && b === 0 ? x + e : x))),
            P.phi,
          )
        );
        near(num, res.lr[n][0], `lr[${n}][0]`);
      }
      const num = await fd((e) => frozen(P.theta0, lr, P.phi.map((x, i) => (i === 0 ? x + e : x))));
      near(num, res.phi[0], "φ[0]");
      if (T === 0) assert.ok(res.phi.every((x) => x === 0), "first-order: no gradient to φ");
    }
  });
}

Deno.test("AdamW adjoint is finite where v = 0 (LoRA A while B = 0)", () => {
  const z = new Float64Array(3);
  const adj = adamwAdjointRef(z, z, z, z, 1e-3, 1, Float64Array.of(1, 2, 3), z, z);
  assert.ok([...adj.g, ...adj.p, ...adj.m, ...adj.v, adj.lr].every(Number.isFinite));
  const s = adamwStepRef(Float64Array.of(1), z, z, Float64Array.of(0.5), 0.1, 1);
  // First bias-corrected Adam step moves by lr·sign(g) (up to eps), after weight decay.
  assert.ok(Math.abs(s.p[0] - (1 * (1 - 0.1 * 0.01) - 0.1)) < 1e-7);
});
