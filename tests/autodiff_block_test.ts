/**
 * End to end: a 2-layer LLaMA-style stack with LoRA on every linear, loss = weighted
 * cross-entropy. Gradient and HVP with respect to the LoRA parameters against finite
 * differences of a float64 reference of the same stack (relative error ≤ 1e-3 in fp32), and
 * the tape's memory: nothing leaks, and hvp's peak pool bytes stay ≤ 2.5 × grad's.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import { type A, axpy, dot, f64 } from "./f64.ts";
import { permuteRef } from "../kernels/ops/strided.ts";
import { crossEntropyRef, ropeRef, ropeTables } from "../kernels/ops/nn_kernels.ts";
import { rmsNormRef } from "../kernels/ops/norm_kernels.ts";
import { matmulShapedRef } from "../kernels/matmul/matmul.ts";
import { attentionComposed64 } from "../kernels/ops/attention/reference.ts";
import {
  type BlockConfig,
  blockLoss,
  blockParams,
  LINEARS,
  linearShape,
  randomBlock,
} from "./example_block.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";

const rt = await testRuntime();
const c: BlockConfig = {
  batch: 2,
  T: 5,
  dim: 16,
  heads: 4,
  kvHeads: 2,
  hidden: 24,
  vocab: 11,
  layers: 2,
  rank: 3,
  loraScale: 2,
};
const hd = c.dim / c.heads, BT = c.batch * c.T;
const rope = ropeTables(c.T, hd, 10000);
const xHost = randn(BT * c.dim, 901);
const tgtHost = Int32Array.from({ length: BT }, (_, i) => (i % 4 === 3 ? -1 : (i * 7) % c.vocab));
const wHost = randn(BT, 902, 0.2, 1.5);

/** float64 twin of blockLoss. */
function loss64(base: A[], lora: A[]): number {
  let bi = 0, li = 0;
  const lin = (x: A, rows: number, W: A, io: [number, number]) => {
    const A_ = lora[li++], B_ = lora[li++];
    const y = matmulShapedRef(x, [rows, io[0]], W, io);
    const xa = matmulShapedRef(x, [rows, io[0]], A_, [io[0], c.rank]);
    const low = matmulShapedRef(xa, [rows, c.rank], B_, [c.rank, io[1]]);
    return y.map((v, i) => v + c.loraScale * low[i]);
  };
  const heads = (t: A, h: number) => permuteRef(t, [c.batch, c.T, h, hd], [0, 2, 1, 3]);
  let h = f64(xHost);
  for (let l = 0; l < c.layers; l++) {
    const n1 = base[bi++], n2 = base[bi++];
    const W = LINEARS.map(() => base[bi++]);
    const sh = (i: number) => linearShape(c, LINEARS[i]);
    const a = rmsNormRef(h, c.dim, n1, 1e-5);
    const q = ropeRef(heads(lin(a, BT, W[0], sh(0)), c.heads), c.T, hd, rope.cos, rope.sin);
    const k = ropeRef(heads(lin(a, BT, W[1], sh(1)), c.kvHeads), c.T, hd, rope.cos, rope.sin);
    const v = heads(lin(a, BT, W[2], sh(2)), c.kvHeads);
    const att = attentionComposed64(q, k, v, [c.batch, c.heads, c.T, hd], c.kvHeads, c.T, true);
    const merged = f64(permuteRef(att, [c.batch, c.heads, c.T, hd], [0, 2, 1, 3]));
    const o = lin(merged, BT, W[3], sh(3));
    h = h.map((x, i) => x + o[i]);
    const m = rmsNormRef(h, c.dim, n2, 1e-5);
    const g = lin(m, BT, W[4], sh(4)), u = lin(m, BT, W[5], sh(5));
    const gated = g.map((x, i) => (x / (1 + Math.exp(-x))) * u[i]);
    const d = lin(gated, BT, W[6], sh(6));
    h = h.map((x, i) => x + d[i]);
  }
  const nf = base[bi++], head = base[bi++];
  const hn = rmsNormRef(h, c.dim, nf, 1e-5);
  const logits = matmulShapedRef(hn, [BT, c.dim], head, [c.dim, c.vocab]);
  const nll = crossEntropyRef(logits, c.vocab, tgtHost);
  return dot(nll, wHost) / BT;
}

function setup() {
  const r = randomBlock(rt, c, 1000, randn);
  const inputs = {
    x: rt.tensor(xHost, [BT, c.dim]),
    cos: rt.tensor(rope.cos, [c.T, hd / 2]),
    sin: rt.tensor(rope.sin, [c.T, hd / 2]),
    targets: rt.tensor(tgtHost, [BT], "i32"),
    weights: rt.tensor(wHost, [BT]),
  };
  const f = (...lo: Tensor[]) => blockLoss(c, r.base, lo, inputs);
  return { ...r, f };
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

Deno.test("block stack: loss, gradient and HVP w.r.t. LoRA match float64 finite differences (≤ 1e-3)", async () => {
  await rt.scopeAsync(async () => {
    const { base, lora, f } = setup();
    const baseH = await Promise.all(base.map(async (t) => f64(await rt.readF32(t))));
    const loraH = await Promise.all(lora.map(async (t) => f64(await rt.readF32(t))));
    const shapes = blockParams(c).lora.map(([, s]) => s);
    const dir = (seed: number) =>
      shapes.map((s, i) => f64(randn(s.reduce((a, b) => a * b, 1), seed + i)));
    const v = dir(5000), u = dir(6000);
    const L = (a: number, b: number) =>
      loss64(baseH, loraH.map((x, i) => axpy(axpy(x, a, u[i]), b, v[i])));

    const vT = v.map((x, i) => rt.tensor(Float32Array.from(x), shapes[i]));
    const r = hvp(f, lora, vT);
    const value = (await rt.readF32(r.value))[0];
    if (relErr(value, L(0, 0)) > 1e-5) throw new Error(`loss ${value} vs ${L(0, 0)}`);
    const gs = await Promise.all(r.grads.map((t) => rt.readF32(t)));
    const hs = await Promise.all(r.hvps.map((t) => rt.readF32(t)));
    // float64 differences: step 1e-4 keeps truncation error (O(h²)) well under 1e-5 here.
    const h = 1e-4, hh = 1e-4;
    const fdGu = (L(h, 0) - L(-h, 0)) / (2 * h);
    const fdGv = (L(0, h) - L(0, -h)) / (2 * h);
    const fdHuv = (L(hh, hh) - L(hh, -hh) - L(-hh, hh) + L(-hh, -hh)) / (4 * hh * hh);
    const gu = gs.reduce((s, g, i) => s + dot(g, u[i]), 0);
    const gv = gs.reduce((s, g, i) => s + dot(g, v[i]), 0);
    const hu = hs.reduce((s, g, i) => s + dot(g, u[i]), 0);
    const errs = { gu: relErr(gu, fdGu), gv: relErr(gv, fdGv), hvp: relErr(hu, fdHuv) };
    console.log(
      `  relative errors: ⟨∇L,u⟩ ${errs.gu.toExponential(2)}, ⟨∇L,v⟩ ${
        errs.gv.toExponential(2)
      }, ⟨Hv,u⟩ ${errs.hvp.toExponential(2)}`,
    );
    for (const [k, e] of Object.entries(errs)) {
      if (!(e <= 1e-3)) throw new Error(`${k}: relative error ${e}`);
    }
    // Single coordinates of the gradient (one per LoRA tensor of the first layer).
    for (let t = 0; t < 4; t++) {
      const e = new Float64Array(loraH[t].length);
      const j = (t * 7) % e.length;
      e[j] = 1;
      const dirs = loraH.map((x, i) => (i === t ? e : new Float64Array(x.length)));
      const Lc = (a: number) => loss64(baseH, loraH.map((x, i) => axpy(x, a, dirs[i])));
      const fd = (Lc(h) - Lc(-h)) / (2 * h);
      assertClose([gs[t][j]], [fd], { rtol: 2e-3, atol: 1e-6, label: `∂L/∂lora[${t}][${j}]` });
    }
    // hvp's gradient equals grad's.
    const g2 = await Promise.all(grad(f, lora).grads.map((t) => rt.readF32(t)));
    g2.forEach((g, i) =>
      assertClose(g, gs[i], { rtol: 1e-5, atol: 1e-7, label: `grad vs hvp.grads ${i}` })
    );
  });
});

Deno.test("tape frees everything: no pool bytes leak; hvp peak ≤ 2.5 × grad peak", async () => {
  const measure = async (mode: "grad" | "hvp") => {
    await rt.sync();
    const before = rt.pool.inUse;
    rt.pool.resetPeak();
    await rt.scopeAsync(async () => {
      const { lora, f } = setup();
      const vs = lora.map((t) => rt.tensor(randn(t.size, 7), t.shape));
      const base = rt.pool.inUse;
      rt.pool.resetPeak();
      if (mode === "grad") grad(f, lora);
      else hvp(f, lora, vs);
      await rt.sync();
      (measure as unknown as { last: number }).last = rt.pool.peak - base;
    });
    await rt.sync();
    const leaked = rt.pool.inUse - before;
    if (leaked !== 0) throw new Error(`${mode} leaked ${leaked} pool bytes`);
    return (measure as unknown as { last: number }).last;
  };
  const g = await measure("grad"), h = await measure("hvp");
  console.log(`  peak pool bytes above inputs: grad ${g}, hvp ${h} (${(h / g).toFixed(2)}×)`);
  if (!(h <= 2.5 * g)) throw new Error(`hvp peak ${h} > 2.5 × grad peak ${g}`);
});
