/**
 * ClippedAdamW (kernels/optim/clipped_adamw.ts) against its plain reference: the global
 * gradient norm in float64, the gradients scaled by min(1, clip/‖g‖), then adamwStepRef per
 * tensor (weight decay only where asked); with and without clipping, over two steps; its
 * state read back and loaded again continues identically.
 */
import { ClippedAdamW, type ClippedAdamWHyper } from "../kernels/optim/clipped_adamw.ts";
import { adamwStepRef } from "../kernels/optim/adamw_math.ts";
import { assertClose, randn, testRuntime } from "./testing.ts";

const rt = await testRuntime();
const shapes = [[3, 5], [7], [67, 2]];
const decay = [true, false, true];

function reference(
  p: Float64Array[],
  m: Float64Array[],
  v: Float64Array[],
  g: Float32Array[],
  lr: number,
  t: number,
  h: ClippedAdamWHyper,
) {
  let sq = 0;
  for (const x of g) for (const y of x) sq += y * y;
  const norm = Math.sqrt(sq);
  const f = h.clip > 0 ? Math.min(1, h.clip / Math.max(norm, 1e-12)) : 1;
  const out = p.map((_, i) =>
    adamwStepRef(p[i], m[i], v[i], g[i].map((x) => x * f), lr, t, {
      ...h,
      weightDecay: decay[i] ? h.weightDecay : 0,
    })
  );
  return { norm, p: out.map((o) => o.p), m: out.map((o) => o.m), v: out.map((o) => o.v) };
}

for (const clip of [0.5, 0]) {
  Deno.test(`ClippedAdamW matches the reference (clip ${clip}), and resumes from its state`, async () => {
    const h: ClippedAdamWHyper = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip };
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const p0 = shapes.map((s, i) => randn(size(s), 10 + i));
    const opt = new ClippedAdamW(rt, shapes, { p: p0 }, decay, h);
    let ref: { p: Float64Array[]; m: Float64Array[]; v: Float64Array[] } = {
      p: p0.map((x) => Float64Array.from(x)),
      m: shapes.map((s) => new Float64Array(size(s))),
      v: shapes.map((s) => new Float64Array(size(s))),
    };
    try {
      for (const [t, lr] of [[1, 0.1], [2, 0.03]]) {
        const g = shapes.map((s, i) => randn(size(s), 100 * t + i));
        const norm = rt.keep(
          rt.scope(() => opt.step(g.map((x, i) => rt.tensor(x, shapes[i])), lr, t)),
        );
        const r = reference(ref.p, ref.m, ref.v, g, lr, t, h);
        assertClose(await rt.readF32(norm), [r.norm], { rtol: 1e-5, label: `norm, step ${t}` });
        norm.dispose();
        const s = await opt.read();
        for (let i = 0; i < shapes.length; i++) {
          assertClose(s.p[i], r.p[i], { rtol: 1e-5, atol: 1e-6, label: `p${i}, step ${t}` });
          assertClose(s.m[i], r.m[i], { rtol: 1e-5, atol: 1e-7, label: `m${i}, step ${t}` });
          assertClose(s.v[i], r.v[i], { rtol: 1e-5, atol: 1e-9, label: `v${i}, step ${t}` });
        }
        ref = r;
      }
      // Read back, loaded into a fresh optimizer, the state steps exactly as the original.
      const saved = await opt.read();
      const twin = new ClippedAdamW(rt, shapes, { p: p0 }, decay, h);
      twin.load(saved);
      const g = shapes.map((s, i) => randn(size(s), 900 + i));
      for (const o of [opt, twin]) {
        rt.scope(() => o.step(g.map((x, i) => rt.tensor(x, shapes[i])), 0.01, 3));
      }
      const [a, b] = [await opt.read(), await twin.read()];
      twin.dispose();
      for (const k of ["p", "m", "v"] as const) {
        a[k].forEach((x, i) => {
          if (!x.every((y, j) => Object.is(y, b[k][i][j]))) throw new Error(`${k}${i} differs`);
        });
      }
    } finally {
      opt.dispose();
    }
  });
}
