/**
 * Fused attention (kernels/ops/attention/, kernels/autodiff/attention.ts):
 *  - each kernel (forward, forward tangent, backward, backward tangent) against its float64
 *    reference, on odd shapes, causal / not, segments, grouped-query heads, S ≠ T;
 *  - the float64 references against float64 central differences (so the kernels' maths is
 *    checked independently of the GPU);
 *  - nn.attention through the autodiff harness (forward, JVP, VJP, gradient and HVP vs
 *    differences of the float64 composed reference), including a cotangent on L;
 *  - equality with nn.attentionComposed (forward, gradient, HVP);
 *  - peak pool bytes of a fused gradient at T = S = 256 far below the T×S score matrix.
 */
import * as AK from "../kernels/ops/attention/mod.ts";
import * as nn from "../kernels/autodiff/nn.ts";
import { fusedAttention } from "../kernels/autodiff/attention.ts";
import { concat, mul, reshape, square, sumAll } from "../kernels/autodiff/basic.ts";
import { grad, hvp } from "../kernels/autodiff/transforms.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { checkOp } from "./autodiff_harness.ts";
import { type A, dot, f64 } from "./f64.ts";
import { attentionComposed64 } from "../kernels/ops/attention/reference.ts";
import { randn, relErr, testRuntime } from "./testing.ts";
import {
  type AttnCfg,
  attnData,
  attnRef,
  attnSizes,
  closeTo,
  kernelsVsRef,
} from "./attention_fixtures.ts";

const rt = await testRuntime();

const seg27 = new Int32Array([0, 0, 1, 1, 1, 2, 2, 0, 0, 0, 0, 3, 3, 3]);
const seg26 = new Int32Array([5, 5, 5, 6, 6, 6, 0, 1, 1, 1, 1, 1]);
const cfgs: AttnCfg[] = [
  { name: "D5 GQA causal+seg", B: 2, H: 4, Hkv: 2, T: 7, S: 7, D: 5, causal: true, seg: seg27 },
  { name: "D5 GQA non-causal", B: 2, H: 4, Hkv: 2, T: 7, S: 7, D: 5, causal: false },
  { name: "D8 MQA causal S>T", B: 1, H: 3, Hkv: 1, T: 5, S: 9, D: 8, causal: true },
  { name: "D4 seg non-causal", B: 2, H: 2, Hkv: 2, T: 6, S: 6, D: 4, causal: false, seg: seg26 },
  { name: "D3 causal S<T (empty rows)", B: 1, H: 2, Hkv: 1, T: 6, S: 3, D: 3, causal: true },
  { name: "D64 T33 GQA causal", B: 1, H: 4, Hkv: 2, T: 33, S: 33, D: 64, causal: true },
];

const axpy = (x: A, h: number, d: A): A => x.map((v, i) => v + h * d[i]);

const sgOk = rt.hasSubgroups && rt.subgroupSize === 8;
const families = ["plain", "subgroup", "texture"] as const;

for (const [ci, c] of cfgs.entries()) {
  for (const fam of families) {
    Deno.test({
      name: `fused attention ${fam} kernels vs float64 reference: ${c.name}`,
      ignore: fam !== "plain" && !sgOk,
      fn: async () => {
        // The kernel family forced for this test's calls; texelRuns counts texel dispatches.
        const texelRuns = { count: 0 };
        await kernelsVsRef(rt, c, 10 + ci * 20, { family: fam, texelRuns });
        // The texture family reads texels wherever D % 4 = 0 (else it is the subgroup one).
        const ran = texelRuns.count;
        if (fam === "texture" && c.D % 4 === 0 && ran < 6) {
          throw new Error(
            `only ${ran} texel-reading dispatches: the texture kernels went untested`,
          );
        }
        if (fam !== "texture" && ran > 0) throw new Error(`${fam} ran ${ran} texel kernels`);
      },
    });
  }
}

for (const [ci, c] of cfgs.entries()) {
  Deno.test(`fused attention float64 references vs central differences: ${c.name}`, () => {
    const { x, t } = attnData(c, 500 + ci * 20);
    const R = attnRef(c), h = 1e-6;
    // Forward tangent = d/dε forward(q + εq̇, k + εk̇, v + εv̇).
    const fw = (e: number) =>
      AK.attentionForward64(R, axpy(x.q, e, t.dq), axpy(x.k, e, t.dk), axpy(x.v, e, t.dv));
    const [Op, Lp] = fw(h), [Om, Lm] = fw(-h);
    const fdO = Op.map((v, i) => (v - Om[i]) / (2 * h)),
      fdL = Lp.map((v, i) => (v - Lm[i]) / (2 * h));
    const [tO, tL] = AK.attentionForwardTangent64(R, x.q, x.k, x.v, t.dq, t.dk, t.dv);
    if (relErr(tO, fdO) > 1e-6 || relErr(tL, fdL) > 1e-6) {
      throw new Error(`forward tangent vs FD: ${relErr(tO, fdO)}, ${relErr(tL, fdL)}`);
    }
    // Backward by the adjoint identity ⟨(gQ, gK, gV), (q̇, k̇, v̇)⟩ = ⟨gO, Ȯ⟩ + ⟨gL, L̇⟩.
    const [gq, gk, gv] = AK.attentionBackward64(R, x);
    const lhs = dot(gq, t.dq) + dot(gk, t.dk) + dot(gv, t.dv);
    const rhs = dot(x.gO, fdO) + dot(x.gL, fdL);
    if (Math.abs(lhs - rhs) > 1e-6 * Math.max(1, Math.abs(rhs))) {
      throw new Error(`backward adjoint: ${lhs} vs ${rhs}`);
    }
    // Backward tangent = d/dε backward(all seven inputs moved along their tangents).
    const bw = (e: number) =>
      AK.attentionBackward64(R, {
        q: axpy(x.q, e, t.dq),
        k: axpy(x.k, e, t.dk),
        v: axpy(x.v, e, t.dv),
        O: axpy(x.O, e, t.dO),
        L: axpy(x.L, e, t.dL),
        gO: axpy(x.gO, e, t.dgO),
        gL: axpy(x.gL, e, t.dgL),
      });
    const bp = bw(h), bm = bw(-h);
    const tb = AK.attentionBackwardTangent64(R, x, t);
    for (let i = 0; i < 3; i++) {
      const fd = bp[i].map((v, j) => (v - bm[i][j]) / (2 * h));
      const e = relErr(tb[i], fd);
      if (e > 1e-6) throw new Error(`backward tangent output ${i} vs FD: relative error ${e}`);
    }
  });
}

// ------------------------------------------------------------------ autodiff harness

for (const c of cfgs.filter((c) => c.S === c.T || !c.seg)) {
  Deno.test(`fused nn.attention: forward, JVP, VJP, HVP vs differences: ${c.name}`, async () => {
    const seg = c.seg && rt.keep(rt.tensor(c.seg, [c.B, c.T], "i32"));
    try {
      await checkOp(rt, {
        name: `attention ${c.name}`,
        shapes: [[c.B, c.H, c.T, c.D], [c.B, c.Hkv, c.S, c.D], [c.B, c.Hkv, c.S, c.D]],
        gpu: (q, k, v) => nn.attention(q, k, v, { causal: c.causal, segIds: seg }),
        ref: (q, k, v) =>
          attentionComposed64(q, k, v, [c.B, c.H, c.T, c.D], c.Hkv, c.S, c.causal, c.seg),
        tol: c.D === 64 ? 4e-3 : 2e-3,
      }, 3);
    } finally {
      seg?.dispose();
    }
  });
}

Deno.test("fused attention: the log-sum-exp output is differentiable (cotangent on L)", async () => {
  const c = cfgs[0];
  const seg = rt.keep(rt.tensor(c.seg!, [c.B, c.T], "i32"));
  const R = attnRef(c);
  try {
    await checkOp(rt, {
      name: "attention [O, L]",
      shapes: [[c.B, c.H, c.T, c.D], [c.B, c.Hkv, c.S, c.D], [c.B, c.Hkv, c.S, c.D]],
      gpu: (q, k, v) => {
        const [O, L] = fusedAttention(q, k, v, { causal: c.causal, segIds: seg, scale: R.scale });
        return concat([reshape(O, [O.size]), reshape(L, [L.size])], 0);
      },
      ref: (q, k, v) => {
        const [O, L] = AK.attentionForward64(R, q, k, v);
        return f64([...O, ...L]);
      },
    }, 4);
  } finally {
    seg.dispose();
  }
});

// ------------------------------------------------------------------ fused = composed

Deno.test("fused attention equals attentionComposed: forward, gradient, HVP", async () => {
  const c = cfgs[0];
  await rt.scopeAsync(async () => {
    const seg = rt.tensor(c.seg!, [c.B, c.T], "i32");
    const { nq, nk } = attnSizes(c);
    const X = [
      rt.tensor(randn(nq, 1, -2, 2), [c.B, c.H, c.T, c.D]),
      rt.tensor(randn(nk, 2, -2, 2), [c.B, c.Hkv, c.S, c.D]),
      rt.tensor(randn(nk, 3), [c.B, c.Hkv, c.S, c.D]),
    ];
    const Vs = X.map((x, i) => rt.tensor(randn(x.size, 10 + i), x.shape));
    const w = rt.tensor(randn(nq, 20), [c.B, c.H, c.T, c.D]);
    const loss = (att: typeof nn.attention) => (...a: Tensor[]) =>
      sumAll(mul(square(att(a[0], a[1], a[2], { causal: true, segIds: seg })), w));
    closeTo(
      await rt.readF32(nn.attention(X[0], X[1], X[2], { causal: true, segIds: seg })),
      f64(await rt.readF32(nn.attentionComposed(X[0], X[1], X[2], { causal: true, segIds: seg }))),
      "forward",
    );
    const hf = hvp(loss(nn.attention), X, Vs), hc = hvp(loss(nn.attentionComposed), X, Vs);
    for (let i = 0; i < 3; i++) {
      closeTo(await rt.readF32(hf.grads[i]), f64(await rt.readF32(hc.grads[i])), `grad ${i}`, 1e-3);
      closeTo(await rt.readF32(hf.hvps[i]), f64(await rt.readF32(hc.hvps[i])), `hvp ${i}`, 1e-3);
    }
    const gf = grad(loss(nn.attention), X);
    closeTo(
      await rt.readF32(gf.grads[1]),
      f64(await rt.readF32(hc.grads[1])),
      "grad (no tangents)",
      1e-3,
    );
  });
});

// ------------------------------------------------------------------ memory

Deno.test("fused attention: grad / HVP peak bytes at T = S = 256 far below the score matrix", async () => {
  const B = 2, H = 4, Hkv = 2, T = 256, D = 8;
  const scoreBytes = B * H * T * T * 4;
  await rt.scopeAsync(async () => {
    const X = [
      rt.tensor(randn(B * H * T * D, 1), [B, H, T, D]),
      rt.tensor(randn(B * Hkv * T * D, 2), [B, Hkv, T, D]),
      rt.tensor(randn(B * Hkv * T * D, 3), [B, Hkv, T, D]),
    ];
    const Vs = X.map((x, i) => rt.tensor(randn(x.size, 10 + i), x.shape));
    const f = (att: typeof nn.attention) => (...a: Tensor[]) =>
      sumAll(square(att(a[0], a[1], a[2], { causal: true })));
    const peak = async (fn: () => void) => {
      await rt.sync();
      const base = rt.pool.inUse;
      rt.pool.resetPeak();
      rt.scope(fn);
      await rt.sync();
      return rt.pool.peak - base;
    };
    const gFused = await peak(() => void grad(f(nn.attention), X));
    const hFused = await peak(() => void hvp(f(nn.attention), X, Vs));
    const gComp = await peak(() => void grad(f(nn.attentionComposed), X));
    const hComp = await peak(() => void hvp(f(nn.attentionComposed), X, Vs));
    console.log(
      `peak bytes (B ${B}, H ${H}, Hkv ${Hkv}, T=S ${T}, D ${D}; score matrix ${scoreBytes}): ` +
        `fused grad ${gFused}, fused hvp ${hFused} (${(hFused / gFused).toFixed(2)}× grad); ` +
        `composed grad ${gComp}, composed hvp ${hComp}`,
    );
    // Everything the fused grad holds is O(T·D) per head: q, k, v, O, L, gO and the grads.
    if (!(gFused < scoreBytes / 4 && gFused < gComp / 8)) {
      throw new Error(
        `fused grad peak ${gFused} B is not far below the score matrix ${scoreBytes} B`,
      );
    }
    if (!(hFused <= 2.5 * gFused)) {
      throw new Error(`fused hvp peak ${hFused} B is over 2.5× the grad peak ${gFused} B`);
    }
  });
});
