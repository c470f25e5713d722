/**
 * What the fused and the flash attention kernel tests share (tests/attention_fused_test.ts,
 * tests/attention_flash_test.ts): a configuration's float64 inputs and tangents, the
 * tolerance check, and the run of every kernel against its float64 reference.
 */
import * as AK from "../kernels/ops/attention/mod.ts";
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { type A, f64 } from "./f64.ts";
import { assertClose, randn } from "./testing.ts";

export interface AttnCfg extends AK.Dims {
  readonly name: string;
  readonly causal: boolean;
  readonly seg?: Int32Array;
}

export const attnRef = (c: AttnCfg): AK.Ref64 => ({
  dims: c,
  causal: c.causal,
  seg: c.seg,
  scale: 1 / Math.sqrt(c.D),
});
export const attnSizes = (c: AttnCfg) => ({
  nq: c.B * c.H * c.T * c.D,
  nk: c.B * c.Hkv * c.S * c.D,
  rows: c.B * c.H * c.T,
});
/** f32-rounded uniform values in [lo, hi) as float64. */
const r32 = (n: number, seed: number, lo = -1, hi = 1): A => f64(randn(n, seed, lo, hi));

/** All inputs and tangents of the backward for a config (fixed seed). */
export function attnData(c: AttnCfg, seed: number) {
  const { nq, nk, rows } = attnSizes(c);
  const q = r32(nq, seed, -2, 2), k = r32(nk, seed + 1, -2, 2), v = r32(nk, seed + 2);
  const [O, L] = AK.attentionForward64(attnRef(c), q, k, v);
  const x = { q, k, v, O, L, gO: r32(nq, seed + 3), gL: r32(rows, seed + 4) };
  const t = {
    dq: r32(nq, seed + 5),
    dk: r32(nk, seed + 6),
    dv: r32(nk, seed + 7),
    dO: r32(nq, seed + 8),
    dL: r32(rows, seed + 9),
    dgO: r32(nq, seed + 10),
    dgL: r32(rows, seed + 11),
  };
  return { x, t };
}

/** Close to a float64 reference: relative `tol`, absolute `tol` × the reference's largest magnitude. */
export const closeTo = (got: ArrayLike<number>, want: A, label: string, tol = 2e-4) => {
  const mag = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assertClose(got, want, { rtol: tol, atol: tol * Math.max(mag, 1e-3), label });
};

/**
 * Every kernel vs its reference with options `o`; returns the number of kernel launches
 * (row / column dispatches, not the row-statistics lane kernel) it made.
 */
export async function kernelsVsRef(
  rt: Runtime,
  c: AttnCfg,
  seed: number,
  o: AK.AttnKernelOptions,
): Promise<number> {
  const { x, t } = attnData(c, seed);
  const R = attnRef(c);
  await rt.scopeAsync(async () => {
    const up = (a: A, shape: number[]) => rt.tensor(Float32Array.from(a), shape);
    const qs = [c.B, c.H, c.T, c.D], ks = [c.B, c.Hkv, c.S, c.D], ls = [c.B, c.H, c.T];
    const q = up(x.q, qs), k = up(x.k, ks), v = up(x.v, ks);
    const m: AK.AttnMask = {
      causal: c.causal,
      segIds: c.seg && rt.tensor(c.seg, [c.B, c.T], "i32"),
      scale: R.scale,
    };
    const [O, L] = AK.attentionForward(q, k, v, m, o);
    closeTo(await rt.readF32(O), x.O, "forward O");
    closeTo(await rt.readF32(L), x.L, "forward L");
    const fwdT = { dq: up(t.dq, qs), dk: up(t.dk, ks), dv: up(t.dv, ks) };
    const [od, ld] = AK.attentionForwardTangent(q, k, v, O, L, fwdT, m, o);
    const [rOd, rLd] = AK.attentionForwardTangent64(R, x.q, x.k, x.v, t.dq, t.dk, t.dv);
    closeTo(await rt.readF32(od), rOd, "forward tangent Ȯ");
    closeTo(await rt.readF32(ld), rLd, "forward tangent L̇");
    // A forward tangent of v alone (the q / k terms and their staged tiles skipped).
    const [odv] = AK.attentionForwardTangent(q, k, v, O, L, { dv: fwdT.dv }, m, o);
    const z = (a: A) => new Float64Array(a.length);
    const [rOdv] = AK.attentionForwardTangent64(R, x.q, x.k, x.v, z(t.dq), z(t.dk), t.dv);
    closeTo(await rt.readF32(odv), rOdv, "forward tangent Ȯ (dv only)");
    // Backward (with a cotangent on L, then without) — O and L from the GPU forward.
    const gO = up(x.gO, qs), gL = up(x.gL, ls);
    const xs = { ...x, O: f64(await rt.readF32(O)), L: f64(await rt.readF32(L)) };
    const [gq, gk, gv] = AK.attentionBackward(q, k, v, O, L, gO, gL, m, o);
    const [rgq, rgk, rgv] = AK.attentionBackward64(R, xs);
    closeTo(await rt.readF32(gq), rgq, "backward gQ");
    closeTo(await rt.readF32(gk), rgk, "backward gK");
    closeTo(await rt.readF32(gv), rgv, "backward gV");
    const noGL = AK.attentionBackward(q, k, v, O, L, gO, undefined, m, o);
    const rNoGL = AK.attentionBackward64(R, { ...xs, gL: z(x.gL) });
    for (const [i, n] of ["gQ", "gK", "gV"].entries()) {
      closeTo(await rt.readF32(noGL[i]), rNoGL[i], `backward ${n}, no gL`);
    }
    // Backward tangent: all tangents, then a subset (absent = zero).
    const T = {
      dq: up(t.dq, qs),
      dk: up(t.dk, ks),
      dv: up(t.dv, ks),
      dO: up(t.dO, qs),
      dL: up(t.dL, ls),
      dgO: up(t.dgO, qs),
      dgL: up(t.dgL, ls),
    };
    const all = AK.attentionBackwardTangent(q, k, v, O, L, gO, gL, T, m, o)!;
    const rAll = AK.attentionBackwardTangent64(R, xs, t);
    for (const [i, n] of ["ġQ", "ġK", "ġV"].entries()) {
      closeTo(await rt.readF32(all[i]), rAll[i], `backward tangent ${n}`, 5e-4);
    }
    const sub = { dk: T.dk, dO: T.dO, dgO: T.dgO };
    const part = AK.attentionBackwardTangent(q, k, v, O, L, gO, undefined, sub, m, o)!;
    const rPart = AK.attentionBackwardTangent64(R, { ...xs, gL: z(x.gL) }, {
      ...t,
      dq: z(t.dq),
      dv: z(t.dv),
      dL: z(t.dL),
      dgL: z(t.dgL),
    });
    for (const [i, n] of ["ġQ", "ġK", "ġV"].entries()) {
      closeTo(await rt.readF32(part[i]), rPart[i], `backward tangent (dk, dO, dgO) ${n}`, 5e-4);
    }
  });
  // forward 1 + forward tangent 2 + backward 2 × 2 + backward tangent 2 × 2.
  return 11;
}
