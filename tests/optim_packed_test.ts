/**
 * AdamW over a packed parameter set (kernels/optim/packed.ts: many tensors in one buffer,
 * one dispatch for all): against the float64 reference per tensor with each tensor's own
 * learning rate, and bit for bit against the per-tensor kernels (same math, same workgroup
 * partition of every tensor, same order of the learning-rate sums). Odd sizes, so tensors
 * start after zero gaps; lanes whose gradients were all zero (v = 0); accumulation and the
 * packed/unpacked round trip.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import {
  adamwAdjoint,
  adamwAdjointPacked,
  adamwStep,
  adamwStepPacked,
} from "../kernels/optim/adamw.ts";
import { adamwAdjointRef, adamwStepRef, INNER_ADAMW } from "../kernels/optim/adamw_math.ts";
import { accumulateInto } from "../kernels/optim/accumulate.ts";
import {
  layoutOf,
  packedBase,
  PackedLayout,
  packedViews,
  toPacked,
  unpack,
} from "../kernels/optim/packed.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";

const rt = await testRuntime();
const SHAPES = [[5, 3], [64], [1], [130], [7, 19]];

Deno.test("packed layout: aligned offsets, zero gaps, block tables, views round trip", async () => {
  const L = PackedLayout.of(rt, SHAPES);
  const align = Math.max(64, rt.storageAlign / 4);
  for (const [j, o] of L.offsets.entries()) {
    if (o % align) throw new Error(`tensor ${j} at ${o} is not aligned to ${align}`);
    if (j && o < L.offsets[j - 1] + L.sizes[j - 1]) throw new Error(`tensor ${j} overlaps`);
  }
  if (L.total % align || L.total < L.offsets.at(-1)! + L.sizes.at(-1)!) {
    throw new Error(`total ${L.total}`);
  }
  for (let b = 0; b < L.tensorOf.length; b++) {
    const j = L.tensorOf[b];
    if (!(L.blocks[j] <= b && b < L.blocks[j + 1])) throw new Error(`block ${b} → tensor ${j}`);
  }
  await rt.scopeAsync(async () => {
    const ts = SHAPES.map((s, j) => rt.tensor(randn(s.reduce((a, b) => a * b, 1), 10 + j), s));
    const flat = toPacked(ts, layoutOf(ts));
    const host = await rt.readF32(flat);
    const views = unpack(flat, L);
    if (packedBase(views, L) === undefined) throw new Error("views are not recognised as packed");
    if (packedBase(ts, L) !== undefined) throw new Error("separate tensors taken as packed");
    for (const [j, t] of ts.entries()) {
      const want = await rt.readF32(t);
      assertClose(await rt.readF32(views[j]), want, { rtol: 0, atol: 0, label: `view ${j}` });
      assertClose(host.subarray(L.offsets[j], L.offsets[j] + L.sizes[j]), want, {
        rtol: 0,
        atol: 0,
        label: `slot ${j}`,
      });
      const gapEnd = j + 1 < ts.length ? L.offsets[j + 1] : L.total;
      for (let i = L.offsets[j] + L.sizes[j]; i < gapEnd; i++) {
        if (host[i] !== 0) throw new Error(`gap after tensor ${j} holds ${host[i]} at ${i}`);
      }
    }
  });
});

Deno.test("packed AdamW step and adjoint = float64 reference and = per-tensor kernels (element-wise outputs bit for bit)", async () => {
  const J = SHAPES.length, n = 2, lrBase = n * J;
  const sizes = SHAPES.map((s) => s.reduce((a, b) => a * b, 1));
  const lrs = Float32Array.from({ length: 3 * J }, (_, i) => 0.01 + 0.003 * i);
  for (const t of [1, 3]) {
    const data = sizes.map((k, j) => {
      const d = {
        p: randn(k, 100 + j),
        m: randn(k, 200 + j, -0.1, 0.1),
        v: randn(k, 300 + j, 0, 0.01),
        g: randn(k, 400 + j),
        pb: randn(k, 500 + j),
        mb: randn(k, 600 + j),
        vb: randn(k, 700 + j),
      };
      if (t === 1) d.m.fill(0), d.v.fill(0);
      d.g[0] = 0, d.m[0] = 0, d.v[0] = 0; // a lane whose gradients were all zero
      return d;
    });
    await rt.scopeAsync(async () => {
      const up = (k: keyof typeof data[0]) => data.map((d, j) => rt.tensor(d[k], SHAPES[j]));
      const L = PackedLayout.of(rt, SHAPES);
      const pk = (ts: Tensor[]) => toPacked(ts, L);
      const [P, M, V, G, PB, MB, VB] = (["p", "m", "v", "g", "pb", "mb", "vb"] as const).map((k) =>
        up(k)
      );
      const lr = rt.tensor(lrs);
      const s = adamwStepPacked(pk(P), pk(M), pk(V), pk(G), lr, lrBase, L, t, INNER_ADAMW);
      const lrBar = rt.zeros([3 * J]), lrBarOne = rt.zeros([3 * J]);
      const a = adamwAdjointPacked(
        pk(P),
        pk(M),
        pk(V),
        pk(G),
        lr,
        lrBase,
        L,
        t,
        INNER_ADAMW,
        pk(PB),
        pk(MB),
        pk(VB),
        lrBar,
      );
      const views = (f: Tensor) => packedViews(f, L);
      const [sp, sm, sv] = [s.p, s.m, s.v].map(views);
      const [ap, am, av, ag] = [a.p, a.m, a.v, a.g].map(views);
      const lrb = await rt.readF32(lrBar);
      const lrbWant = new Float32Array(3 * J);
      for (let j = 0; j < J; j++) {
        const d = data[j], lrj = lrs[lrBase + j];
        const ref = adamwStepRef(d.p, d.m, d.v, d.g, lrj, t);
        assertClose(await rt.readF32(sp[j]), ref.p, { label: `p' ${j}` });
        assertClose(await rt.readF32(sm[j]), ref.m, { label: `m' ${j}` });
        assertClose(await rt.readF32(sv[j]), ref.v, { label: `v' ${j}` });
        const ar = adamwAdjointRef(d.p, d.m, d.v, d.g, lrj, t, d.pb, d.mb, d.vb);
        assertClose(await rt.readF32(ap[j]), ar.p, { label: `p̄ ${j}` });
        assertClose(await rt.readF32(am[j]), ar.m, { rtol: 1e-3, atol: 1e-4, label: `m̄ ${j}` });
        assertClose(await rt.readF32(av[j]), ar.v, { rtol: 1e-3, atol: 1e-2, label: `v̄ ${j}` });
        assertClose(await rt.readF32(ag[j]), ar.g, { rtol: 1e-3, atol: 1e-4, label: `ḡ ${j}` });
        lrbWant[lrBase + j] = ar.lr;
        // The per-tensor kernels give the same bits.
        const one = adamwStep(P[j], M[j], V[j], G[j], lr, lrBase + j, t, INNER_ADAMW);
        const same = { rtol: 0, atol: 0 };
        assertClose(await rt.readF32(sp[j]), await rt.readF32(one.p), {
          ...same,
          label: `p' ≡ ${j}`,
        });
        assertClose(await rt.readF32(sv[j]), await rt.readF32(one.v), {
          ...same,
          label: `v' ≡ ${j}`,
        });
        const oa = adamwAdjoint(
          P[j],
          M[j],
          V[j],
          G[j],
          lr,
          lrBase + j,
          t,
          INNER_ADAMW,
          PB[j],
          MB[j],
          VB[j],
          lrBarOne,
        );
        assertClose(await rt.readF32(ag[j]), await rt.readF32(oa.g), {
          ...same,
          label: `ḡ ≡ ${j}`,
        });
        assertClose(await rt.readF32(av[j]), await rt.readF32(oa.v), {
          ...same,
          label: `v̄ ≡ ${j}`,
        });
      }
      assertClose(lrb, lrbWant, { rtol: 1e-4, atol: 1e-4, label: "lr̄" });
      // The packed kernel sums a vec4 per lane first, the per-tensor one a scalar per lane: the
      // rate sums agree to rounding, not bit for bit.
      assertClose(lrb, await rt.readF32(lrBarOne), {
        rtol: 1e-5,
        atol: 1e-6,
        label: "lr̄ ≈ per tensor",
      });
      // The gaps stay zero through a step and an adjoint.
      for (const f of [s.p, s.m, s.v, a.p, a.m, a.v, a.g]) {
        const h = await rt.readF32(f);
        for (let j = 0; j < J; j++) {
          const end = j + 1 < J ? L.offsets[j + 1] : L.total;
          for (let i = L.offsets[j] + L.sizes[j]; i < end; i++) {
            if (h[i] !== 0) throw new Error(`gap after tensor ${j}: ${h[i]}`);
          }
        }
      }
      // One accumulation over the whole set = per tensor.
      const acc = pk(P);
      accumulateInto(acc, pk(G), -0.5);
      const accViews = views(acc);
      for (let j = 0; j < J; j++) {
        assertClose(
          await rt.readF32(accViews[j]),
          data[j].p.map((x, i) => x - 0.5 * data[j].g[i]),
          { label: `acc ${j}` },
        );
      }
    });
  }
});
