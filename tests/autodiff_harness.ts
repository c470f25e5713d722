/**
 * Checks one differentiable op (or composition) four ways against a float64 reference:
 * forward values; JVP against central differences; VJP by the adjoint identity
 * ⟨vjp(g), v⟩ = ⟨g, J·v⟩ (J·v by differences); HVP of L = Σ c ⊙ f(x)³ as ⟨H·v, u⟩ against the
 * mixed central difference ∂²L/∂a∂b (x + a·u + b·v), plus ⟨∇L, u⟩ against differences.
 * A cube, not a square: for f = sqrt, Σ c ⊙ f(x)² is linear in x, its Hessian is exactly zero and
 * the check compared float32 noise with zero (it failed on an NVIDIA H200, passed on lavapipe).
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { grad, hvp, jvp, vjp } from "../kernels/autodiff/transforms.ts";
import { mul, reshape, square, sumAll } from "../kernels/autodiff/basic.ts";
import { assertClose, randn } from "./testing.ts";
import { type A, axpy, dot, f64 } from "./f64.ts";

export interface OpCase {
  readonly name: string;
  readonly shapes: number[][];
  /** Value range of each input (default [-1, 1]). */
  readonly range?: (i: number) => [number, number];
  readonly gpu: (...xs: Tensor[]) => Tensor;
  readonly ref: (...xs: A[]) => A;
  readonly tol?: number;
  /** Skip the HVP check (ops with no second-order use). */
  readonly noHvp?: boolean;
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function close(label: string, got: number, want: number, mag: number, tol: number) {
  if (!(Math.abs(got - want) <= tol * Math.max(Math.abs(want), mag, 1e-6))) {
    throw new Error(`${label}: got ${got}, want ${want} (tol ${tol}, magnitude ${mag})`);
  }
}

export async function checkOp(rt: Runtime, c: OpCase, seed = 1): Promise<void> {
  const tol = c.tol ?? 2e-3;
  const xs = c.shapes.map((s, i) => {
    const [lo, hi] = c.range?.(i) ?? [-1, 1];
    return f64(randn(numel(s), seed * 100 + i, lo, hi));
  });
  // Round inputs to f32 so both sides see the same numbers.
  xs.forEach((x, i) => (xs[i] = f64(Float32Array.from(x))));
  const vs = c.shapes.map((s, i) => f64(Float32Array.from(randn(numel(s), seed * 100 + 50 + i))));
  const us = c.shapes.map((s, i) => f64(Float32Array.from(randn(numel(s), seed * 100 + 70 + i))));
  const y0 = c.ref(...xs);
  const gOut = f64(Float32Array.from(randn(y0.length, seed * 100 + 90)));
  const cW = f64(Float32Array.from(randn(y0.length, seed * 100 + 91, 0.2, 1)));
  const h = 1e-4;
  const at = (a: number, dir: A[]) => xs.map((x, i) => axpy(x, a, dir[i]));
  const refJv = ((): A => {
    const p = c.ref(...at(h, vs)), m = c.ref(...at(-h, vs));
    return p.map((v, i) => (v - m[i]) / (2 * h));
  })();
  const L = (ys: A) => {
    let s = 0;
    for (let i = 0; i < ys.length; i++) s += cW[i] * ys[i] * ys[i] * ys[i];
    return s;
  };
  const Lat = (a: number, b: number) =>
    L(c.ref(...xs.map((x, i) => axpy(axpy(x, a, us[i]), b, vs[i]))));
  const hh = 1e-3;
  const refHuv = (Lat(hh, hh) - Lat(hh, -hh) - Lat(-hh, hh) + Lat(-hh, -hh)) / (4 * hh * hh);
  const refGu = (Lat(h, 0) - Lat(-h, 0)) / (2 * h);

  await rt.scopeAsync(async () => {
    const X = xs.map((x, i) => rt.tensor(Float32Array.from(x), c.shapes[i]));
    const V = vs.map((v, i) => rt.tensor(Float32Array.from(v), c.shapes[i]));
    const U = us.map((u) => Float32Array.from(u));
    // forward
    const y = await rt.readF32(rt.scope(() => c.gpu(...X)));
    assertClose(y, y0, { rtol: tol, atol: tol * 1e-1, label: `${c.name} forward` });
    // JVP
    const { tangent } = jvp(c.gpu, X, V);
    assertClose(await rt.readF32(tangent), refJv, {
      rtol: 5 * tol,
      atol: tol * Math.max(1e-3, Math.max(...refJv.map(Math.abs))),
      label: `${c.name} JVP`,
    });
    // VJP
    const { out, pullback } = vjp(c.gpu, X);
    const dxs = pullback(rt.tensor(Float32Array.from(gOut), out.shape));
    let lhs = 0, mag = 0;
    for (let i = 0; i < dxs.length; i++) {
      const d = await rt.readF32(dxs[i]);
      lhs += dot(d, vs[i]);
      for (let j = 0; j < d.length; j++) mag += Math.abs(d[j] * vs[i][j]);
    }
    close(`${c.name} VJP ⟨vjp(g), v⟩`, lhs, dot(gOut, refJv), mag, tol);
    if (c.noHvp) return;
    // gradient and HVP of L = Σ c ⊙ f(x)³
    const Ct = rt.tensor(Float32Array.from(cW), [y0.length]);
    const loss = (...a: Tensor[]) => {
      const out = c.gpu(...a);
      const flat = reshape(out, [out.size]);
      return sumAll(mul(mul(square(flat), flat), Ct));
    };
    const g1 = grad(loss, X);
    let gu = 0, gmag = 0;
    for (let i = 0; i < X.length; i++) {
      const d = await rt.readF32(g1.grads[i]);
      gu += dot(d, U[i]);
      for (let j = 0; j < d.length; j++) gmag += Math.abs(d[j] * U[i][j]);
    }
    close(`${c.name} ⟨∇L, u⟩`, gu, refGu, gmag, tol);
    const r = hvp(loss, X, V);
    let hu = 0, hmag = 0;
    for (let i = 0; i < X.length; i++) {
      const d = await rt.readF32(r.hvps[i]);
      hu += dot(d, U[i]);
      for (let j = 0; j < d.length; j++) hmag += Math.abs(d[j] * U[i][j]);
    }
    close(`${c.name} HVP ⟨Hv, u⟩`, hu, refHuv, hmag, 5 * tol);
  });
}
