/**
 * Cross-entropy with one workgroup per row (kernels/ops/cross_entropy_rows.ts, the default on
 * adapters that are not CPU adapters), forced here through `CeOptions.rows` so lavapipe runs
 * it: forward (NLL, log-sum-exp), backward (the gradient from its log-sum-exp) and the
 * tangents (Σ p·ż in both modes, the gradient's tangent) against a float64 reference, and
 * against the one-lane-per-row kernels, whose tangents are checked against float64 as well
 * (their texel variants where V % 4 = 0 on CPU adapters). Vocabularies below, at and above the
 * 256 lanes of a workgroup; ignored targets (−1) included.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import {
  type CeOptions,
  crossEntropyGrad,
  crossEntropyGradTangent,
  crossEntropyPDot,
  crossEntropyRows,
} from "../kernels/ops/nn_kernels.ts";
import { softmaxLseRef } from "../kernels/ops/cross_entropy_rows.ts";

const rt = await testRuntime();
const WG: CeOptions = { rows: "workgroup" };
const LANE: CeOptions = { rows: "lane" };

for (const [N, V] of [[5, 9], [3, 256], [4, 1000], [70, 33], [7, 1028]]) {
  Deno.test(`cross-entropy, one workgroup per row, (${N}, ${V}): forward, backward, tangents = float64`, async () => {
    await rt.scopeAsync(async () => {
      const zh = randn(N * V, V, -4, 4), zdh = randn(N * V, V + 1);
      const gh = randn(N, V + 2, 0.2, 1.5), gdh = randn(N, V + 3);
      const tgt = Int32Array.from({ length: N }, (_, r) => (r % 3 === 1 ? -1 : (r * 7 + 3) % V));
      const z = rt.tensor(zh, [N, V]), zd = rt.tensor(zdh, [N, V]);
      const g = rt.tensor(gh, [N]), gd = rt.tensor(gdh, [N]);
      const targets = rt.tensor(tgt, [N], "i32");
      const { p, lse } = softmaxLseRef(zh, N, V);
      const on = (r: number) => tgt[r] >= 0;

      // forward
      const [nll, lseG] = crossEntropyRows(z, targets, WG);
      const nllRef = Float64Array.from(
        { length: N },
        (_, r) => on(r) ? lse[r] - zh[r * V + tgt[r]] : 0,
      );
      assertClose(await rt.readF32(lseG), lse, { label: "lse", rtol: 1e-5, atol: 1e-5 });
      assertClose(await rt.readF32(nll), nllRef, { label: "nll", rtol: 1e-5, atol: 1e-5 });

      // backward: dz = g·(p − onehot) from the workgroup kernel's log-sum-exp
      const dz = crossEntropyGrad(z, targets, lseG, g);
      const dzRef = p.map((pv, i) => {
        const r = Math.floor(i / V);
        return on(r) ? gh[r] * (pv - (i % V === tgt[r] ? 1 : 0)) : 0;
      });
      assertClose(await rt.readF32(dz), dzRef, { label: "dz", rtol: 1e-4, atol: 1e-6 });

      // tangents: Σ p·ż (log-sum-exp), minus ż_t (NLL), and the gradient's tangent
      const pdRef = Float64Array.from({ length: N }, (_, r) => {
        let s = 0;
        for (let v = 0; v < V; v++) s += p[r * V + v] * zdh[r * V + v];
        return s;
      });
      const nllDotRef = pdRef.map((s, r) => (on(r) ? s - zdh[r * V + tgt[r]] : 0));
      const pd = crossEntropyPDot(z, targets, lseG, zd, false, WG);
      const nllDot = crossEntropyPDot(z, targets, lseG, zd, true, WG);
      assertClose(await rt.readF32(pd), pdRef, { label: "Σ p ż", rtol: 1e-4, atol: 1e-5 });
      assertClose(await rt.readF32(nllDot), nllDotRef, { label: "nll tangent", atol: 1e-5 });
      const gt = crossEntropyGradTangent(z, targets, lseG, g, gd, zd, WG);
      const gtRef = p.map((pv, i) => {
        const r = Math.floor(i / V), oh = i % V === tgt[r] ? 1 : 0;
        return on(r) ? gdh[r] * (pv - oh) + gh[r] * pv * (zdh[i] - pdRef[r]) : 0;
      });
      assertClose(await rt.readF32(gt), gtRef, { label: "dz tangent", rtol: 1e-4, atol: 1e-6 });

      // and the one-lane-per-row kernels agree (to rounding: the sums run in another order)
      const [nllL, lseL] = crossEntropyRows(z, targets, LANE);
      assertClose(await rt.readF32(lseG), await rt.readF32(lseL), { label: "lse wg ~ lane" });
      assertClose(await rt.readF32(nll), await rt.readF32(nllL), { label: "nll wg ~ lane" });
      const pdL = crossEntropyPDot(z, targets, lseL, zd, true, LANE);
      assertClose(await rt.readF32(nllDot), await rt.readF32(pdL), { label: "ṅll wg ~ lane" });

      // the lane kernels' tangents against float64 too (on CPU adapters, V % 4 = 0 takes the
      // texel kernels ce_pdot_tex and ce_grad_tangent_tex; other V the scalar ones)
      const pdL0 = crossEntropyPDot(z, targets, lseL, zd, false, LANE);
      assertClose(await rt.readF32(pdL0), pdRef, { label: "Σ p ż (lane)", rtol: 1e-4, atol: 1e-5 });
      assertClose(await rt.readF32(pdL), nllDotRef, { label: "nll tangent (lane)", atol: 1e-5 });
      const gtL = crossEntropyGradTangent(z, targets, lseL, g, gd, zd, LANE);
      assertClose(await rt.readF32(gtL), gtRef, {
        label: "dz tangent (lane)",
        rtol: 1e-4,
        atol: 1e-6,
      });
    });
  });
}

Deno.test("cross-entropy picks one lane per row on CPU adapters by default", async () => {
  await rt.scopeAsync(async () => {
    const N = 4, V = 300;
    const z = rt.tensor(randn(N * V, 9, -3, 3), [N, V]);
    const targets = rt.tensor(Int32Array.of(0, 5, -1, 299), [N], "i32");
    const [nllD] = crossEntropyRows(z, targets);
    const [nllP] = crossEntropyRows(z, targets, rt.isCpuAdapter ? LANE : WG);
    // Same kernel as the adapter's choice: bit for bit.
    const a = await rt.readF32(nllD), b = await rt.readF32(nllP);
    if (a.some((v, i) => v !== b[i])) throw new Error("default path ≠ the adapter's choice");
  });
});
