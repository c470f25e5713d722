/**
 * The PERK meta-gradient (perk-method §2–§4), written once over a small backend so the
 * float64 reference (metagrad_ref.ts) and the GPU path run the same sweep.
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
 *   the authors' code, the default). With `cut`, truncated steps also pass θ̄ straight
 *   through (J = I) and give their learning rates no gradient (the paper's formula (5)
 *   read as a first-order pass-through), so T = 0 stays a first-order method.
 * Objectives may be synchronous (GPU: dispatches are only recorded) or asynchronous.
 * Only LoRA-sized state (θ_n, m_n, v_n, g_n) is kept per step; activations are recomputed
 * by each gradient / Hessian-vector product, so memory does not grow with T.
 *
 * The backend works on whole parameter lists (θ is J tensors), so the GPU backend can update
 * every tensor of a packed set in one dispatch (metagrad_gpu.ts); the float64 one maps
 * over the tensors.
 */

export interface SweepBackend<P, Phi> {
  zerosLike(x: readonly P[]): P[];
  /** AdamW step of every tensor at inner step n (0-based); tensor j uses lr[n][j]. */
  step(p: P[], m: P[], v: P[], g: P[], n: number): { p: P[]; m: P[]; v: P[] };
  /** Adjoint of `step`; accumulates lr̄[n][j] internally. */
  adjoint(
    p: P[],
    m: P[],
    v: P[],
    g: P[],
    n: number,
    pBar: P[],
    mBar: P[],
    vBar: P[],
  ): { p: P[]; m: P[]; v: P[]; g: P[] };
  /** a + b (the sweep releases a and b right after). */
  add(a: P[], b: P[]): P[];
  addPhi(a: Phi | undefined, b: Phi): Phi;
  /** Free values the sweep no longer needs (no-op for garbage-collected arrays). */
  release(x: P[]): void;
}

export interface InnerObjective<P, Phi> {
  /** g = ∇θ L_in(θ, φ) at inner step n (n picks e.g. that step's dropout mask). */
  grad(theta: P[], n: number): P[] | Promise<P[]>;
  /** H_θθ v and H_φθ v at θ = θ_n (φ fixed inside the objective). */
  hvp(theta: P[], v: P[], n: number): { theta: P[]; phi: Phi } | Promise<{ theta: P[]; phi: Phi }>;
}

export interface OuterObjective<P> {
  valueAndGrad(theta: P[]): { loss: number; grad: P[] } | Promise<{ loss: number; grad: P[] }>;
}

export interface MetaConfig {
  readonly steps: number; // N
  readonly retained: number; // T
  readonly cut?: boolean;
}

export interface Trajectory<P> {
  readonly thetas: P[][];
  readonly ms: P[][];
  readonly vs: P[][];
  readonly gs: P[][];
}

/** The inner loop (test-time learning, and the forward of meta-training). */
export async function innerLoop<P, Phi>(
  be: SweepBackend<P, Phi>,
  inner: InnerObjective<P, Phi>,
  theta0: P[],
  steps: number,
): Promise<Trajectory<P>> {
  const thetas: P[][] = [theta0];
  const ms: P[][] = [be.zerosLike(theta0)];
  const vs: P[][] = [be.zerosLike(theta0)];
  const gs: P[][] = [];
  for (let n = 0; n < steps; n++) {
    const g = await inner.grad(thetas[n], n);
    gs.push(g);
    const next = be.step(thetas[n], ms[n], vs[n], g, n);
    thetas.push(next.p);
    ms.push(next.m);
    vs.push(next.v);
  }
  return { thetas, ms, vs, gs };
}

/**
 * Outer loss and meta-gradient. Returns θ̄_0 and φ̄; learning-rate adjoints are
 * accumulated by the backend's `adjoint`.
 */
export async function metaGradient<P, Phi>(
  be: SweepBackend<P, Phi>,
  inner: InnerObjective<P, Phi>,
  outer: OuterObjective<P>,
  theta0: P[],
  cfg: MetaConfig,
): Promise<{ loss: number; theta0: P[]; phi: Phi | undefined; trajectory: Trajectory<P> }> {
  const N = cfg.steps, T = cfg.retained;
  if (!Number.isInteger(T) || T < 0 || T > N) {
    throw new RangeError(`retained steps T=${T} must be an integer in 0..N=${N}`);
  }
  const tr = await innerLoop(be, inner, theta0, N);
  const { loss, grad } = await outer.valueAndGrad(tr.thetas[N]);
  let pBar = grad;
  let mBar = be.zerosLike(theta0);
  let vBar = be.zerosLike(theta0);
  let phiBar: Phi | undefined;
  const swap = (old: P[], next: P[]) => {
    be.release(old);
    return next;
  };
  for (let n = N - 1; n >= 0; n--) {
    const retained = n >= N - T;
    if (!retained && cfg.cut) continue; // θ̄ passes through unchanged; no lr gradient
    const adj = be.adjoint(tr.thetas[n], tr.ms[n], tr.vs[n], tr.gs[n], n, pBar, mBar, vBar);
    pBar = swap(pBar, adj.p);
    if (retained) {
      mBar = swap(mBar, adj.m);
      vBar = swap(vBar, adj.v);
      const hv = await inner.hvp(tr.thetas[n], adj.g, n);
      be.release(adj.g);
      pBar = swap(pBar, be.add(pBar, hv.theta));
      be.release(hv.theta);
      phiBar = be.addPhi(phiBar, hv.phi);
    } else {
      // g_n is detached: nothing flows into it, nor (through it) into earlier m and v.
      [adj.m, adj.v, adj.g].forEach((x) => be.release(x));
      mBar = swap(mBar, be.zerosLike(theta0));
      vBar = swap(vBar, be.zerosLike(theta0));
    }
  }
  be.release(mBar);
  be.release(vBar);
  return { loss, theta0: pBar, phi: phiBar, trajectory: tr };
}
