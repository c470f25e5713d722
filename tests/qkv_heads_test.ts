/**
 * The fused attention-input op (kernels/autodiff/qkv_heads.ts): q, k, v token rows → head-major
 * layout, q scaled, q and k rotated at per-token positions — against a float64 reference
 * (forward, JVP, VJP and HVP through the harness), and against the composed ops it replaced
 * (scale, ropeAt, permutes) for values, gradients and Hessian-vector products; odd shapes
 * (grouped-query heads, T not a multiple of anything, positions out of order), with and
 * without rotation, both kernel families (staged texels on CPU adapters when sizes are
 * multiples of 4; storage reads otherwise).
 */
import { checkOp } from "./autodiff_harness.ts";
import { assertClose, randn, testRuntime } from "./testing.ts";
import { type A, f64 } from "./f64.ts";
import { qkvHeads } from "../kernels/autodiff/qkv_heads.ts";
import { concat, mul, permute, reshape, scale, sumAll } from "../kernels/autodiff/basic.ts";
import { ropeAt } from "../kernels/autodiff/model_ops.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import { ropeTables } from "../kernels/ops/nn_kernels.ts";
import { qkvHeadsRef } from "../kernels/ops/qkv_heads.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";

const rt = await testRuntime();

interface Case {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  hd: number;
  rope: boolean;
}
const CASES: Case[] = [
  { B: 2, T: 3, H: 4, Hkv: 2, hd: 24, rope: true }, // vec4 texel family (hd/2 % 4 = 0)
  { B: 1, T: 7, H: 3, Hkv: 1, hd: 8, rope: false },
  { B: 2, T: 3, H: 4, Hkv: 2, hd: 4, rope: true }, // scalar texel family (sizes % 4 = 0)
  { B: 1, T: 5, H: 3, Hkv: 1, hd: 6, rope: true }, // storage family (odd sizes)
  { B: 2, T: 2, H: 2, Hkv: 2, hd: 2, rope: false },
];

function setup(c: Case) {
  const N = c.B * c.T, half = c.hd / 2, P = 12;
  const pos = Int32Array.from({ length: N }, (_, i) => (i * 5 + 2) % P); // out of order
  const tab = ropeTables(P, c.hd, 10000);
  const rope = c.rope
    ? {
      cos: rt.keep(rt.tensor(tab.cos, [P, half])),
      sin: rt.keep(rt.tensor(tab.sin, [P, half])),
      pos: rt.keep(rt.tensor(pos, [N], "i32")),
    }
    : undefined;
  const L = { B: c.B, T: c.T, H: c.H, Hkv: c.Hkv, hd: c.hd, qScale: 1 / Math.sqrt(c.hd) };
  const rot = c.rope ? { pos, cos: tab.cos, sin: tab.sin } : undefined;
  const ref = (q: A, k: A, v: A): A =>
    f64([
      ...qkvHeadsRef(q, c, c.H, L.qScale, rot),
      ...qkvHeadsRef(k, c, c.Hkv, 1, rot),
      ...qkvHeadsRef(v, c, c.Hkv, 1),
    ]);
  const shapes = [[N, c.H * c.hd], [N, c.Hkv * c.hd], [N, c.Hkv * c.hd]];
  /** The composed ops the fused op replaced (gpu_model.ts before). */
  const composed = (q: Tensor, k: Tensor, v: Tensor): Tensor[] => {
    const heads = (t: Tensor, h: number) => permute(reshape(t, [c.B, c.T, h, c.hd]), [0, 2, 1, 3]);
    let qs = scale(q, L.qScale), ks = k;
    if (rope) {
      qs = ropeAt(qs, rope.cos, rope.sin, rope.pos, c.hd);
      ks = ropeAt(ks, rope.cos, rope.sin, rope.pos, c.hd);
    }
    return [heads(qs, c.H), heads(ks, c.Hkv), heads(v, c.Hkv)];
  };
  const fused = (q: Tensor, k: Tensor, v: Tensor): Tensor[] => qkvHeads(q, k, v, L, rope);
  return { shapes, ref, composed, fused };
}

const flat = (ts: Tensor[]) => concat(ts.map((t) => reshape(t, [t.size])), 0);

for (const [i, c] of CASES.entries()) {
  const name = `qkvHeads B${c.B} T${c.T} H${c.H}/${c.Hkv} hd${c.hd}${c.rope ? " rope" : ""}`;
  Deno.test(`${name}: forward, JVP, VJP, HVP = float64`, async () => {
    const s = setup(c);
    await checkOp(rt, {
      name,
      shapes: s.shapes,
      gpu: (q, k, v) => flat(s.fused(q, k, v)),
      ref: s.ref,
    }, 40 + i);
  });
  Deno.test(`${name}: values, gradients and H·v = the composed ops`, async () => {
    const s = setup(c);
    await rt.scopeAsync(async () => {
      const X = s.shapes.map((sh, j) => rt.tensor(randn(sh[0] * sh[1], 60 + j, -2, 2), sh));
      const V = s.shapes.map((sh, j) => rt.tensor(randn(sh[0] * sh[1], 70 + j), sh));
      const W = rt.tensor(randn(X.reduce((a, t) => a + t.size, 0), 80, 0.2, 1));
      // Σ w·y³ over the concatenated outputs: nonlinear, so H·v is not zero.
      const loss = (f: typeof s.fused) => (q: Tensor, k: Tensor, v: Tensor) => {
        const y = flat(f(q, k, v));
        return sumAll(mul(mul(mul(y, y), y), W));
      };
      const read = (ts: Tensor[]) => Promise.all(ts.map((t) => rt.readF32(t)));
      const [yf, yc] = [s.fused(X[0], X[1], X[2]), s.composed(X[0], X[1], X[2])];
      for (let j = 0; j < 3; j++) {
        assertClose(await rt.readF32(yf[j]), await rt.readF32(yc[j]), {
          rtol: 0,
          atol: 0,
          label: `value ${j} (bit for bit)`,
        });
      }
      const gf = await read(grad(loss(s.fused), X).grads);
      const gc = await read(grad(loss(s.composed), X).grads);
      const hf = await read(hvp(loss(s.fused), X, V).hvps);
      const hc = await read(hvp(loss(s.composed), X, V).hvps);
      for (let j = 0; j < 3; j++) {
        assertClose(gf[j], gc[j], { rtol: 1e-5, atol: 1e-6, label: `∇ ${j}` });
        assertClose(hf[j], hc[j], { rtol: 1e-4, atol: 1e-5, label: `H·v ${j}` });
      }
    });
  });
}
