/** A small logistic inner problem whose token weights depend on θ and φ (as PERK's do). */
import type { InnerProblemRef, OuterProblemRef, Params } from "../pipeline/perk/metagrad_ref.ts";
import { rng } from "./testing.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const softplus = (x: number, beta = 1) => Math.log1p(Math.exp(beta * x)) / beta;

export function toy(seed: number) {
  const r = rng(seed);
  const sizes = [3, 4]; // two "LoRA tensors"
  const d = 7, nTok = 9, nPhi = 3, c = 0.7;
  const rnd = () => 2 * r() - 1;
  const a = Array.from({ length: nTok }, () => Array.from({ length: d }, rnd));
  const b = Array.from({ length: nTok }, () => Array.from({ length: d }, rnd));
  const f = Array.from({ length: nTok }, () => Array.from({ length: nPhi }, rnd));
  const y = Array.from({ length: nTok }, () => (r() < 0.5 ? -1 : 1));
  const ao = Array.from({ length: 5 }, () => Array.from({ length: d }, rnd));
  const yo = Array.from({ length: 5 }, () => (r() < 0.5 ? -1 : 1));
  const flat = (th: Params) => [...th[0], ...th[1]];
  const split = (x: ArrayLike<number>): Params => [
    Float64Array.from(Array.prototype.slice.call(x, 0, sizes[0])),
    Float64Array.from(Array.prototype.slice.call(x, sizes[0])),
  ];
  const dot = (u: number[], v: number[]) => u.reduce((s, ui, i) => s + ui * v[i], 0);
  // L_in = (1/n) Σ w_i ℓ_i, ℓ_i = softplus(−y_i a_i·θ), w_i = softplus_3(φ·f_i + c·tanh(b_i·θ))
  function innerGrads(theta: Params, phi: Float64Array) {
    const th = flat(theta);
    const gT = new Array(d).fill(0), gP = new Array(nPhi).fill(0);
    for (let i = 0; i < nTok; i++) {
      const s = dot(a[i], th), tb = Math.tanh(dot(b[i], th));
      const z = dot(f[i], [...phi]) + c * tb;
      const w = softplus(z, 3), dw = sig(3 * z);
      const l = softplus(-y[i] * s), dl = -y[i] * sig(-y[i] * s);
      for (let k = 0; k < d; k++) {
        gT[k] += (w * dl * a[i][k] + l * dw * c * (1 - tb * tb) * b[i][k]) / nTok;
      }
      for (let k = 0; k < nPhi; k++) gP[k] += (l * dw * f[i][k]) / nTok;
    }
    return { gT, gP };
  }
  const inner: InnerProblemRef = {
    grad: (theta, phi) => split(innerGrads(theta, phi).gT),
    hvp(theta, phi, v) {
      // Central differences of the analytic gradient along v (float64: ~1e-9 accurate).
      const eps = 1e-5, th = flat(theta), vv = flat(v);
      const plus = innerGrads(split(th.map((x, k) => x + eps * vv[k])), phi);
      const minus = innerGrads(split(th.map((x, k) => x - eps * vv[k])), phi);
      return {
        theta: split(plus.gT.map((x, k) => (x - minus.gT[k]) / (2 * eps))),
        phi: Float64Array.from(plus.gP.map((x, k) => (x - minus.gP[k]) / (2 * eps))),
      };
    },
  };
  const outerLoss = (theta: Params) =>
    ao.reduce((s, aj, j) => s + softplus(-yo[j] * dot(aj, flat(theta))), 0);
  const outer: OuterProblemRef = {
    valueAndGrad(theta) {
      const g = new Array(d).fill(0);
      ao.forEach((aj, j) => {
        const dl = -yo[j] * sig(-yo[j] * dot(aj, flat(theta)));
        for (let k = 0; k < d; k++) g[k] += dl * aj[k];
      });
      return { loss: outerLoss(theta), grad: split(g) };
    },
  };
  const theta0 = split(Array.from({ length: d }, () => 0.3 * rnd()));
  const phi = Float64Array.from({ length: nPhi }, () => 0.5 * rnd());
  return { inner, outer, outerLoss, theta0, phi, split, flat };
}
