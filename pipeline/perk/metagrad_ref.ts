/**
 * Float64 backend for the meta-gradient sweep (metagrad.ts): the plain reference that
 * tests check against finite differences, and that the GPU path is checked against.
 */
import {
  adamwAdjointRef,
  type AdamWHyper,
  adamwStepRef,
  INNER_ADAMW,
} from "../../kernels/optim/adamw_math.ts";
import {
  innerLoop,
  type InnerObjective,
  type MetaConfig,
  metaGradient,
  type OuterObjective,
  type SweepBackend,
} from "./metagrad.ts";

export type Params = Float64Array[];

export interface InnerProblemRef {
  /** g = ∇θ L_in(θ, φ) */
  grad(theta: Params, phi: Float64Array): Params;
  /** H_θθ v and H_φθ v at (θ, φ). */
  hvp(theta: Params, phi: Float64Array, v: Params): { theta: Params; phi: Float64Array };
}

export type OuterProblemRef = OuterObjective<Float64Array>;

export function refBackend(
  lr: number[][],
  lrBar: number[][],
  h: AdamWHyper = INNER_ADAMW,
): SweepBackend<Float64Array, Float64Array> {
  return {
    zerosLike: (xs) => xs.map((x) => new Float64Array(x.length)),
    step(p, m, v, g, n) {
      const s = p.map((_, j) => adamwStepRef(p[j], m[j], v[j], g[j], lr[n][j], n + 1, h));
      return { p: s.map((x) => x.p), m: s.map((x) => x.m), v: s.map((x) => x.v) };
    },
    adjoint(p, m, v, g, n, pBar, mBar, vBar) {
      const a = p.map((_, j) =>
        adamwAdjointRef(p[j], m[j], v[j], g[j], lr[n][j], n + 1, pBar[j], mBar[j], vBar[j], h)
      );
      a.forEach((x, j) => lrBar[n][j] += x.lr);
      return {
        p: a.map((x) => x.p),
        m: a.map((x) => x.m),
        v: a.map((x) => x.v),
        g: a.map((x) => x.g),
      };
    },
    add: (a, b) => a.map((x, j) => x.map((y, i) => y + b[j][i])),
    addPhi: (a, b) => (a ? a.map((x, i) => x + b[i]) : b.slice()),
    release: () => {},
  };
}

const bind = (
  inner: InnerProblemRef,
  phi: Float64Array,
): InnerObjective<Float64Array, Float64Array> => ({
  grad: (theta) => inner.grad(theta, phi),
  hvp: (theta, v) => inner.hvp(theta, phi, v),
});

export function innerLoopRef(
  inner: InnerProblemRef,
  theta0: Params,
  lr: number[][],
  phi: Float64Array,
  steps: number,
  h: AdamWHyper = INNER_ADAMW,
) {
  return innerLoop(refBackend(lr, [], h), bind(inner, phi), theta0, steps);
}

export async function metaGradientRef(
  inner: InnerProblemRef,
  outer: OuterProblemRef,
  theta0: Params,
  lr: number[][],
  phi: Float64Array,
  cfg: MetaConfig,
  h: AdamWHyper = INNER_ADAMW,
): Promise<{ loss: number; theta0: Params; lr: number[][]; phi: Float64Array; thetaN: Params }> {
  const lrBar = lr.map((row) => row.map(() => 0));
  const r = await metaGradient(refBackend(lr, lrBar, h), bind(inner, phi), outer, theta0, cfg);
  return {
    loss: r.loss,
    theta0: r.theta0,
    lr: lrBar,
    phi: r.phi ?? new Float64Array(phi.length),
    thetaN: r.trajectory.thetas[cfg.steps],
  };
}
