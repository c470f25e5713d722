/**
 * The fused LoRA linear (kernels/autodiff/lora.ts) and its skinny-product kernels
 * (kernels/ops/lora_kernels.ts), whose adapter dropout is applied inside the products:
 *  - each kernel (down, up with accumulation, gradA), one product and two summed, with and
 *    without dropout, both families (subgroup texel: in, r multiples of 4 on CPU adapters;
 *    plain: odd shapes) against the float64 reference `loraProductsRef`;
 *  - the rule as PERK uses it (W frozen, A and B differentiated, dropout on): gradients and
 *    Hessian-vector products of A and B equal those of the composed ops it replaced
 *    (dropout, two matmuls, a frozen product), with A's and B's cotangents delivered into
 *    sinks (views of one packed buffer) and without.
 * The harness cases in autodiff_ops_test.ts check forward, JVP, VJP and HVP of every input.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import { loraDown, loraGradA, loraProductsRef, loraUp } from "../kernels/ops/lora_kernels.ts";
import { dropoutMaskRef } from "../kernels/ops/nn_kernels.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import { matmul, mul, sumAll } from "../kernels/autodiff/basic.ts";
import { dropout, loraLinear } from "../kernels/autodiff/nn.ts";
import { frozenLinear } from "../kernels/autodiff/model_ops.ts";
import { layoutOf, packedViews, packedZeros } from "../kernels/optim/packed.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";

const rt = await testRuntime();

// [rows, in, r]: subgroup texel family where in % 4 = r % 4 = 0 (on CPU adapters), plain
// otherwise. The larger ones cross its edges: rows past 128 (several workgroups) and not a
// multiple of 8, in % 8 = 4, in past 32 and 16 columns, r past 16 (several column blocks).
const SHAPES: [number, number, number][] = [
  [203, 36, 12],
  [150, 44, 36],
  [1030, 128, 16],
  [5, 8, 4],
  [67, 12, 8],
  [9, 16, 16],
  [6, 8, 20],
  [5, 6, 2],
  [3, 7, 3],
];

for (const [rows, inDim, r] of SHAPES) {
  for (const drop of [undefined, { p: 0.3, seed: 5 }]) {
    Deno.test(`LoRA kernels (${rows}, ${inDim}, ${r}), dropout ${drop?.p ?? 0}: = float64`, async () => {
      const mask = drop ? dropoutMaskRef(rows * inDim, drop.p, drop.seed) : undefined;
      const x1 = randn(rows * inDim, 1), x2 = randn(rows * inDim, 2);
      const a1 = randn(inDim * r, 3), a2 = randn(inDim * r, 4);
      const g1 = randn(rows * r, 5), g2 = randn(rows * r, 6);
      const c = randn(rows * inDim, 7);
      await rt.scopeAsync(async () => {
        const X1 = rt.tensor(x1, [rows, inDim]), X2 = rt.tensor(x2, [rows, inDim]);
        const A1 = rt.tensor(a1, [inDim, r]), A2 = rt.tensor(a2, [inDim, r]);
        const G1 = rt.tensor(g1, [rows, r]), G2 = rt.tensor(g2, [rows, r]);
        const C = rt.tensor(c, [rows, inDim]);
        const opts = { rtol: 1e-4, atol: 1e-5 };
        for (const two of [false, true]) {
          // The first product, and the second one where `two`.
          const prods = <T>(p1: T, q1: T, p2: T, q2: T) => [
            { p: p1, q: q1 },
            ...(two ? [{ p: p2, q: q2 }] : []),
          ];
          const down = loraDown(prods(X1, A1, X2, A2), drop);
          const dRef = loraProductsRef("down", prods(x1, a1, x2, a2), rows, inDim, r, mask);
          assertClose(await rt.readF32(down), dRef, { ...opts, label: `down ${two}` });
          for (const acc of [undefined, C]) {
            const up = loraUp(prods(G1, A1, G2, A2), [rows, inDim], drop, acc);
            const uRef = loraProductsRef(
              "up",
              prods(g1, a1, g2, a2),
              rows,
              inDim,
              r,
              mask,
              acc && c,
            );
            assertClose(await rt.readF32(up), uRef, { ...opts, label: `up ${two} ${!!acc}` });
          }
          const ga = loraGradA(prods(X1, G1, X2, G2), inDim, r, drop);
          const gRef = loraProductsRef("gradA", prods(x1, g1, x2, g2), rows, inDim, r, mask);
          // Ā sums over every row: its rounding grows like √rows (f32, 1,030 rows: ~3e-5).
          const gOpts = { ...opts, atol: 1e-5 * Math.max(1, Math.sqrt(rows / 64)) };
          assertClose(await rt.readF32(ga), gRef, { ...gOpts, label: `gradA ${two}` });
        }
      });
    });
  }
}

/** The composed LoRA linear the fused rule replaced: frozen product, dropout, two matmuls. */
function composed(x: Tensor, W: Tensor, A: Tensor, B: Tensor, s: number, seed: number) {
  const y = frozenLinear(x, W);
  return matmul(matmul(dropout(x, 0.1, seed), A), B, { alpha: s, addend: y });
}

for (const [rows, inDim, r] of [[33, 16, 4], [9, 6, 2]] as const) {
  Deno.test(`fused LoRA linear (${rows}, ${inDim}, r ${r}), W frozen: ∇ and H·v of A, B = composed`, async () => {
    const out = 12, s = 2, seed = 9;
    await rt.scopeAsync(async () => {
      const x = rt.tensor(randn(rows * inDim, 21), [rows, inDim]);
      const W = rt.tensor(randn(inDim * out, 22), [inDim, out]);
      const A = rt.tensor(randn(inDim * r, 23), [inDim, r]);
      const B = rt.tensor(randn(r * out, 24), [r, out]);
      const c = rt.tensor(randn(rows * out, 25, 0.2, 1), [rows, out]);
      const vA = rt.tensor(randn(inDim * r, 26), [inDim, r]);
      const vB = rt.tensor(randn(r * out, 27), [r, out]);
      // A nonlinear loss of the output, so the Hessian is not zero: Σ c·y³.
      const loss = (f: (a: Tensor, b: Tensor) => Tensor) => (a: Tensor, b: Tensor) => {
        const y = f(a, b);
        return sumAll(mul(mul(mul(y, y), y), c));
      };
      const fused = loss((a, b) =>
        loraLinear(x, W, undefined, { A: a, B: b, scale: s, dropout: { p: 0.1, seed } })
      );
      const comp = loss((a, b) => composed(x, W, a, b, s, seed));
      const read = (ts: Tensor[]) => Promise.all(ts.map((t) => rt.readF32(t)));
      const gWant = await read(grad(comp, [A, B]).grads);
      const hWant = await read(hvp(comp, [A, B], [vA, vB]).hvps);
      const layout = layoutOf([A, B]);
      for (const sinks of [false, true]) {
        const into = () => sinks ? packedViews(packedZeros(rt, layout), layout) : undefined;
        const gInto = into(), hInto = into();
        const g = await read(grad(fused, [A, B], { into: gInto }).grads);
        const h = await read(hvp(fused, [A, B], [vA, vB], { into: hInto }).hvps);
        for (const j of [0, 1]) {
          const scaleG = Math.max(...gWant[j].map(Math.abs));
          const scaleH = Math.max(...hWant[j].map(Math.abs));
          assertClose(g[j], gWant[j], { rtol: 1e-4, atol: 1e-5 * scaleG, label: `∇${j} ${sinks}` });
          assertClose(h[j], hWant[j], {
            rtol: 1e-4,
            atol: 1e-5 * scaleH,
            label: `Hv${j} ${sinks}`,
          });
        }
        if (gInto && hInto) {
          // The results are the sinks' contents.
          for (const j of [0, 1]) {
            assertClose(await rt.readF32(gInto[j]), g[j], {
              rtol: 0,
              atol: 0,
              label: `into ∇${j}`,
            });
            assertClose(await rt.readF32(hInto[j]), h[j], {
              rtol: 0,
              atol: 0,
              label: `into Hv${j}`,
            });
          }
        }
      }
    });
  });
}
