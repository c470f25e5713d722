/**
 * The PERK meta-gradient, plain float64 reference (perk-method §2–§4).
 *
 * Inner loop: N AdamW steps on the LoRA parameters θ (a list of tensors) of the weighted
 * inner loss L_in(θ, φ); step n uses the learned learning rate lr[n][j] for tensor j.
 * Outer loss L_out(θ_N). Meta-parameters: θ_0, lr, φ (the weighting model).
 *
 * Reverse sweep, from θ̄_N = ∇L_out(θ_N), m̄ = v̄ = 0, for n = N−1 … 0:
 *   the AdamW adjoint gives θ̄_n (direct path), m̄_n, v̄_n, ḡ_n and lr̄[n][j];
 *   a retained step (n ≥ N−T) adds the second-order terms through g_n = ∇θ L_in(θ_n, φ):
 *     θ̄_n += H_θθ(θ_n) ḡ_n,   φ̄ += H_φθ(θ_n) ḡ_n     (one Hessian-vector product)
 *   a truncated step (n < N−T) drops them ("detach the gradient, keep the parameter path":
 *   the authors' code). With `cut`, truncated steps also pass θ̄ straight through (J = I)
 *   and give their learning rates no gradient (the paper's formula (5) read as a
 *   first-order pass-through), so T = 0 stays a first-order method.
 * Only LoRA-sized state (θ_n, m_n, v_n, g_n) is stored per step.
 */
import { adamwAdjointRef, type AdamWHyper, adamwStepRef, INNER_ADAMW } from "./adamw_math.ts";

export type Params = Float64Array[];

export interface InnerProblemRef {
  /** g = ∇θ L_in(θ, φ) */
  grad(theta: Params, phi: Float64Array): Params;
  /** H_θθ v and H_φθ v at (θ, φ). */
  hvp(theta: Params, phi: Float64Array, v: Params): { theta: Params; phi: Float64Array };
}

export interface OuterProblemRef {
  valueAndGrad(theta: Params): { loss: number; grad: Params };
}

export interface MetaConfig {
  readonly steps: number; // N
  readonly retained: number; // T
  readonly cut?: boolean;
  readonly adamw?: AdamWHyper;
}

export interface MetaResult {
  readonly loss: number;
  readonly theta0: Params;
  readonly lr: number[][]; // [step][tensor]
  readonly phi: Float64Array;
  readonly thetaN: Params;
}

/** Run the inner loop only (test time / forward of meta-training). */
export function innerLoopRef(
  inner: InnerProblemRef,
  theta0: Params,
  lr: number[][],
  phi: Float64Array,
  steps: number,
  h: AdamWHyper = INNER_ADAMW,
): { thetas: Params[]; ms: Params[]; vs: Params[]; gs: Params[] } {
  const thetas: Params[] = [theta0];
  const ms: Params[] = [theta0.map((t) => new Float64Array(t.length))];
  const vs: Params[] = [theta0.map((t) => new Float64Array(t.length))];
  const gs: Params[] = [];
  for (let n = 0; n < steps; n++) {
    const g = inner.grad(thetas[n], phi);
    gs.push(g);
    const next = thetas[n].map((p, j) =>
      adamwStepRef(p, ms[n][j], vs[n][j], g[j], lr[n][j], n + 1, h)
    );
    thetas.push(next.map((s) => s.p));
    ms.push(next.map((s) => s.m));
    vs.push(next.map((s) => s.v));
  }
  return { thetas, ms, vs, gs };
}

export function metaGradientRef(
  inner: InnerProblemRef,
  outer: OuterProblemRef,
  theta0: Params,
  lr: number[][],
  phi: Float64Array,
  cfg: MetaConfig,
): MetaResult {
  const N = cfg.steps, T = cfg.retained, h = cfg.adamw ?? INNER_ADAMW;
  if (T < 0 || T > N) throw new RangeError(`retained steps T=${T} must be in 0..N=${N}`);
  const { thetas, ms, vs, gs } = innerLoopRef(inner, theta0, lr, phi, N, h);
  const { loss, grad } = outer.valueAndGrad(thetas[N]);
  let pBar: Params = grad;
  let mBar: Params = theta0.map((t) => new Float64Array(t.length));
  let vBar: Params = theta0.map((t) => new Float64Array(t.length));
  const lrBar = lr.map((row) => row.map(() => 0));
  const phiBar = new Float64Array(phi.length);
  for (let n = N - 1; n >= 0; n--) {
    const retained = n >= N - T;
    if (!retained && cfg.cut) continue; // θ̄ passes through unchanged; no lr gradient
    const adj = thetas[n].map((p, j) =>
      adamwAdjointRef(
        p,
        ms[n][j],
        vs[n][j],
        gs[n][j],
        lr[n][j],
        n + 1,
        pBar[j],
        mBar[j],
        vBar[j],
        h,
      )
    );
    adj.forEach((a, j) => (lrBar[n][j] = a.lr));
    pBar = adj.map((a) => a.p);
    if (retained) {
      mBar = adj.map((a) => a.m);
      vBar = adj.map((a) => a.v);
      const hv = inner.hvp(thetas[n], phi, adj.map((a) => a.g));
      pBar = pBar.map((pb, j) => pb.map((x, i) => x + hv.theta[j][i]));
      for (let i = 0; i < phi.length; i++) phiBar[i] += hv.phi[i];
    } else {
      // g_n is detached: nothing flows into it, nor (through it) into earlier m, v.
      mBar = theta0.map((t) => new Float64Array(t.length));
      vBar = theta0.map((t) => new Float64Array(t.length));
    }
  }
  return { loss, theta0: pBar, lr: lrBar, phi: phiBar, thetaN: thetas[N] };
}
