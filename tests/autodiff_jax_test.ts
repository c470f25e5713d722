/**
 * Cross-check of the differentiable core against an independent autodiff library,
 * npm:@jax-js/jax (JAX's API in JavaScript), run on its Wasm CPU backend so it does not
 * share our WebGPU device. Each case writes one small scalar loss in both libraries and
 * compares, in float32, the loss, its gradient w.r.t. the parameters, its JVP along a
 * direction v and the Hessian-vector product H·v (jax-js: jvp of grad, forward-over-reverse;
 * ours: transforms.ts hvp / jvp): relative error ≤ 1e-4 overall and per parameter tensor.
 * jax-js composes our fused ops (attention, RoPE, LoRA linear, cross-entropy) from numpy
 * primitives, so this also checks our fused kernels' JVP/VJP rules against generic ones.
 * jax-js in float64 is logged too: it tells which float32 side sits closer to exact.
 *
 * Case 1 (the PERK shape): x (T, C) → RMSNorm → q, k, v with LoRA on q and v → RoPE on q, k
 * → causal 2-head attention → output projection + residual → RMSNorm → logits → weighted
 * cross-entropy with ignored rows; parameters: the LoRA pairs.
 * Case 2: batch 2 with packed segments → LayerNorm (weight, bias) → grouped-query causal
 * attention (4 query heads on 2 kv heads) with segment masks → SwiGLU MLP with LoRA on the
 * gate; parameters: LoRA on q and gate plus the first LayerNorm's weight and bias.
 */
import { defaultDevice, grad, init, jvp, nn, numpy as np, valueAndGrad } from "@jax-js/jax";
import { randn, relErr, testRuntime } from "./testing.ts";
import { ropeTables } from "../kernels/ops/nn_kernels.ts";
import { add, matmul, mul, permute, reshape, scale, silu } from "../kernels/autodiff/basic.ts";
import {
  attention,
  layerNorm,
  loraLinear,
  rmsNorm,
  rope,
  weightedCrossEntropy,
} from "../kernels/autodiff/nn.ts";
import { hvp, jvp as ourJvp } from "../kernels/autodiff/transforms.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";

// jax-js: the Wasm backend only (already its default; said explicitly so it never picks
// WebGPU and competes for our device).
await init("wasm");
defaultDevice("wasm");
const rt = await testRuntime();

const EPS = 1e-5;
type JaxLoss = (p: np.Array[]) => np.Array;

/** One loss written twice, with its parameters (shapes, values) and a tangent direction. */
interface Case {
  readonly shapes: number[][];
  readonly params: Float32Array[];
  readonly dirs: Float32Array[];
  /** Our loss; constant tensors are made in the caller's scope. */
  ours(): (...p: Tensor[]) => Tensor;
  jax(dtype: np.DType): JaxLoss;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const seeded = (shapes: number[][], seed: number, lo = -1, hi = 1) =>
  shapes.map((s, i) => randn(size(s), seed + i, lo, hi));

/** A jax-js array of host data in `dtype` (float32 or float64). */
const jaxArray = (h: ArrayLike<number>, shape: number[], dtype: np.DType) =>
  np.array(dtype === np.float64 ? Float64Array.from(h) : Float32Array.from(h), { shape, dtype });

// jax-js arrays are reference counted and every op consumes its arguments: constants are
// built fresh where used and values used twice take `.ref`.

/** x · rsqrt(mean(x²) + ε) · w over the last axis. */
const jaxRms = (x: np.Array, w: np.Array) => {
  const r = np.reciprocal(np.sqrt(np.mean(np.square(x.ref), -1, { keepdims: true }).add(EPS)));
  return x.mul(r).mul(w);
};
/** (x − μ) · rsqrt(var + ε) · w + b over the last axis. */
const jaxLayerNorm = (x: np.Array, w: np.Array, b: np.Array) => {
  const xc = x.ref.sub(np.mean(x, -1, { keepdims: true }));
  const r = np.reciprocal(np.sqrt(np.mean(np.square(xc.ref), -1, { keepdims: true }).add(EPS)));
  return xc.mul(r).mul(w).add(b);
};
/** x·W + s·(x·A)·B. */
const jaxLora = (x: np.Array, W: np.Array, A: np.Array, B: np.Array, s: number) =>
  np.matmul(x.ref, W).add(np.matmul(np.matmul(x, A), B).mul(s));
/** Softmax attention from scores with an additive mask (0 or −1e9: exp gives exactly 0). */
const jaxAttention = (q: np.Array, k: np.Array, v: np.Array, mask: np.Array, hd: number) => {
  const scores = np.matmul(q, np.swapaxes(k, -1, -2)).mul(1 / Math.sqrt(hd)).add(mask);
  return np.matmul(nn.softmax(scores, -1), v);
};
/** Σ_i w_i · (lse(z_i) − z_i[t_i]) with a one-hot of the targets (ignored rows: w_i = 0). */
const jaxWeightedCe = (z: np.Array, targets: Int32Array, weights: Float32Array, dt: np.DType) => {
  const [N, V] = z.shape;
  const oneHot = Float32Array.from(
    { length: N * V },
    (_, i) => +(targets[Math.floor(i / V)] === i % V),
  );
  const wValid = Float32Array.from(weights, (w, i) => (targets[i] < 0 ? 0 : w));
  const nll = nn.logsumexp(z.ref, -1).sub(np.sum(z.mul(jaxArray(oneHot, [N, V], dt)), -1));
  return np.sum(nll.mul(jaxArray(wValid, [N], dt)));
};

// ------------------------------------------------------------------ case 1

function perkCase(): Case {
  const T = 6, C = 8, H = 2, hd = C / H, V = 11, R = 3, S = 1.5;
  const h = {
    x: randn(T * C, 7101),
    n1: randn(C, 7102, 0.8, 1.2),
    nf: randn(C, 7103, 0.8, 1.2),
    Wq: randn(C * C, 7104, -0.6, 0.6),
    Wk: randn(C * C, 7105, -0.6, 0.6),
    Wv: randn(C * C, 7106, -0.6, 0.6),
    Wo: randn(C * C, 7107, -0.6, 0.6),
    Wh: randn(C * V, 7108, -0.6, 0.6),
    weights: randn(T, 7109, 0.2, 1.5),
  };
  // Rows 2 and 5 are ignored (−1): they must contribute nothing.
  const targets = Int32Array.from({ length: T }, (_, i) => (i % 3 === 2 ? -1 : (i * 7 + 3) % V));
  const tables = ropeTables(T, hd, 10000);
  const shapes = [[C, R], [R, C], [C, R], [R, C]]; // Aq, Bq, Av, Bv
  const causal = Float32Array.from(
    { length: T * T },
    (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0),
  );

  const ours = () => {
    const t = (k: keyof typeof h, shape: number[]) => rt.tensor(h[k], shape);
    const x = t("x", [T, C]), n1 = t("n1", [C]), nf = t("nf", [C]);
    const [Wq, Wk, Wv, Wo] = (["Wq", "Wk", "Wv", "Wo"] as const).map((k) => t(k, [C, C]));
    const Wh = t("Wh", [C, V]), w = t("weights", [T]), tg = rt.tensor(targets, [T], "i32");
    const cos = rt.tensor(tables.cos, [T, hd / 2]), sin = rt.tensor(tables.sin, [T, hd / 2]);
    const heads = (u: Tensor) => permute(reshape(u, [1, T, H, hd]), [0, 2, 1, 3]); // (1, H, T, hd)
    return (Aq: Tensor, Bq: Tensor, Av: Tensor, Bv: Tensor) => {
      const a = rmsNorm(x, n1, EPS); // (T, C)
      const q = rope(heads(loraLinear(a, Wq, undefined, { A: Aq, B: Bq, scale: S })), cos, sin);
      const k = rope(heads(matmul(a, Wk)), cos, sin);
      const v = heads(loraLinear(a, Wv, undefined, { A: Av, B: Bv, scale: S }));
      const att = attention(q, k, v, { causal: true }); // (1, H, T, hd)
      const merged = reshape(permute(att, [0, 2, 1, 3]), [T, C]);
      const logits = matmul(rmsNorm(add(x, matmul(merged, Wo)), nf, EPS), Wh); // (T, V)
      return scale(weightedCrossEntropy(logits, tg, w), 1 / T);
    };
  };

  const jax = (dt: np.DType): JaxLoss => {
    const k = (key: keyof typeof h, shape: number[]) => jaxArray(h[key], shape, dt);
    const heads = (u: np.Array) => np.transpose(np.reshape(u, [T, H, hd]), [1, 0, 2]); // (H, T, hd)
    // HF half-split rotary embedding: [x1·cos − x2·sin, x2·cos + x1·sin].
    const ropeJ = (u: np.Array) => {
      const [x1, x2] = np.split(u, 2, -1);
      const cos = () => jaxArray(tables.cos, [T, hd / 2], dt);
      const sin = () => jaxArray(tables.sin, [T, hd / 2], dt);
      return np.concatenate([
        x1.ref.mul(cos()).sub(x2.ref.mul(sin())),
        x2.mul(cos()).add(x1.mul(sin())),
      ], -1);
    };
    return ([Aq, Bq, Av, Bv]) => {
      const x = k("x", [T, C]);
      const a = jaxRms(x.ref, k("n1", [C]));
      const q = ropeJ(heads(jaxLora(a.ref, k("Wq", [C, C]), Aq, Bq, S)));
      const kk = ropeJ(heads(np.matmul(a.ref, k("Wk", [C, C]))));
      const v = heads(jaxLora(a, k("Wv", [C, C]), Av, Bv, S));
      const att = jaxAttention(q, kk, v, jaxArray(causal, [T, T], dt), hd); // (H, T, hd)
      const merged = np.reshape(np.transpose(att, [1, 0, 2]), [T, C]);
      const hh = x.add(np.matmul(merged, k("Wo", [C, C])));
      const z = np.matmul(jaxRms(hh, k("nf", [C])), k("Wh", [C, V])); // (T, V)
      return jaxWeightedCe(z, targets, h.weights, dt).mul(1 / T);
    };
  };
  return {
    shapes,
    params: seeded(shapes, 7200, -0.5, 0.5),
    dirs: seeded(shapes, 7300),
    ours: () => {
      const f = ours();
      return (...p) => f(p[0], p[1], p[2], p[3]);
    },
    jax,
  };
}

// ------------------------------------------------------------------ case 2

function gqaCase(): Case {
  const B = 2, T = 5, C = 16, H = 4, Hkv = 2, hd = C / H, F = 12, V = 7, R = 2, S = 2;
  const N = B * T, kvC = Hkv * hd, grp = H / Hkv;
  const h = {
    x: randn(N * C, 8101),
    ln2w: randn(C, 8102, 0.8, 1.2),
    ln2b: randn(C, 8103, -0.1, 0.1),
    Wq: randn(C * C, 8104, -0.4, 0.4),
    Wk: randn(C * kvC, 8105, -0.4, 0.4),
    Wv: randn(C * kvC, 8106, -0.4, 0.4),
    Wo: randn(C * C, 8107, -0.4, 0.4),
    Wg: randn(C * F, 8108, -0.4, 0.4),
    Wu: randn(C * F, 8109, -0.4, 0.4),
    Wd: randn(F * C, 8110, -0.4, 0.4),
    Wh: randn(C * V, 8111, -0.4, 0.4),
    weights: randn(N, 8112, 0.2, 1.5),
  };
  const targets = Int32Array.from({ length: N }, (_, i) => (i % 4 === 1 ? -1 : (i * 5 + 2) % V));
  // Batch row 0 is one document; row 1 packs two (tokens 0–1 and 2–4).
  const seg = Int32Array.from([0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  // (B, 1, T, T) additive mask: causal and same segment.
  const mask = Float32Array.from({ length: B * T * T }, (_, i) => {
    const b = Math.floor(i / (T * T)), t = Math.floor(i / T) % T, s = i % T;
    return s <= t && seg[b * T + s] === seg[b * T + t] ? 0 : -1e9;
  });
  const shapes = [[C, R], [R, C], [C, R], [R, F], [C], [C]]; // Aq, Bq, Ag, Bg, ln1 w, ln1 b
  const params = seeded(shapes, 8200, -0.5, 0.5);
  params[4] = randn(C, 8204, 0.8, 1.2); // LayerNorm weight near 1

  const ours = () => {
    const t = (k: keyof typeof h, shape: number[]) => rt.tensor(h[k], shape);
    const x = t("x", [N, C]), w2 = t("ln2w", [C]), b2 = t("ln2b", [C]);
    const Wq = t("Wq", [C, C]), Wk = t("Wk", [C, kvC]), Wv = t("Wv", [C, kvC]);
    const Wo = t("Wo", [C, C]), Wg = t("Wg", [C, F]), Wu = t("Wu", [C, F]);
    const Wd = t("Wd", [F, C]), Wh = t("Wh", [C, V]), w = t("weights", [N]);
    const tg = rt.tensor(targets, [N], "i32"), segIds = rt.tensor(seg, [B, T], "i32");
    const heads = (u: Tensor, n: number) => permute(reshape(u, [B, T, n, hd]), [0, 2, 1, 3]);
    return (Aq: Tensor, Bq: Tensor, Ag: Tensor, Bg: Tensor, w1: Tensor, b1: Tensor) => {
      const a = layerNorm(x, w1, b1, EPS); // (N, C)
      const q = heads(loraLinear(a, Wq, undefined, { A: Aq, B: Bq, scale: S }), H);
      const att = attention(q, heads(matmul(a, Wk), Hkv), heads(matmul(a, Wv), Hkv), {
        causal: true,
        segIds,
      }); // (B, H, T, hd)
      const hh = add(x, matmul(reshape(permute(att, [0, 2, 1, 3]), [N, C]), Wo));
      const m = layerNorm(hh, w2, b2, EPS);
      const g = loraLinear(m, Wg, undefined, { A: Ag, B: Bg, scale: S });
      const out = add(hh, matmul(mul(silu(g), matmul(m, Wu)), Wd));
      return scale(weightedCrossEntropy(matmul(out, Wh), tg, w), 1 / N);
    };
  };

  const jax = (dt: np.DType): JaxLoss => {
    const k = (key: keyof typeof h, shape: number[]) => jaxArray(h[key], shape, dt);
    // (N, n·hd) → (B, n, T, hd); kv heads repeated so query head i reads kv head ⌊i / grp⌋.
    const heads = (u: np.Array, n: number) =>
      np.transpose(np.reshape(u, [B, T, n, hd]), [0, 2, 1, 3]);
    return ([Aq, Bq, Ag, Bg, w1, b1]) => {
      const x = k("x", [N, C]);
      const a = jaxLayerNorm(x.ref, w1, b1);
      const q = heads(jaxLora(a.ref, k("Wq", [C, C]), Aq, Bq, S), H);
      const kk = np.repeat(heads(np.matmul(a.ref, k("Wk", [C, kvC])), Hkv), grp, 1);
      const v = np.repeat(heads(np.matmul(a, k("Wv", [C, kvC])), Hkv), grp, 1);
      const att = jaxAttention(q, kk, v, jaxArray(mask, [B, 1, T, T], dt), hd); // (B, H, T, hd)
      const merged = np.reshape(np.transpose(att, [0, 2, 1, 3]), [N, C]);
      const hh = x.add(np.matmul(merged, k("Wo", [C, C])));
      const m = jaxLayerNorm(hh.ref, k("ln2w", [C]), k("ln2b", [C]));
      const g = jaxLora(m.ref, k("Wg", [C, F]), Ag, Bg, S);
      const mlp = np.matmul(nn.silu(g).mul(np.matmul(m, k("Wu", [C, F]))), k("Wd", [F, C]));
      const z = np.matmul(hh.add(mlp), k("Wh", [C, V])); // (N, V)
      return jaxWeightedCe(z, targets, h.weights, dt).mul(1 / N);
    };
  };
  return {
    shapes,
    params,
    dirs: seeded(shapes, 8300),
    ours: () => {
      const f = ours();
      return (...p) => f(p[0], p[1], p[2], p[3], p[4], p[5]);
    },
    jax,
  };
}

// ------------------------------------------------------------------ running and comparing

interface Derivs {
  value: number;
  jvp: number;
  grads: ArrayLike<number>[];
  hvps: ArrayLike<number>[];
}

async function runOurs(c: Case): Promise<Derivs> {
  return await rt.scopeAsync(async () => {
    const f = c.ours();
    const ps = c.params.map((d, i) => rt.tensor(d, c.shapes[i]));
    const vs = c.dirs.map((d, i) => rt.tensor(d, c.shapes[i]));
    const r = hvp(f, ps, vs);
    const j = ourJvp(f, ps, vs);
    const read = (ts: Tensor[]) => Promise.all(ts.map((t) => rt.readF32(t)));
    return {
      value: (await rt.readF32(r.value))[0],
      jvp: (await rt.readF32(j.tangent))[0],
      grads: await read(r.grads),
      hvps: await read(r.hvps),
    };
  });
}

async function runJax(
  c: Case,
  dtype: np.DType,
): Promise<Derivs & { gradsViaJvp: ArrayLike<number>[] }> {
  const f = c.jax(dtype);
  const arr = (hs: Float32Array[]) => hs.map((h, i) => jaxArray(h, c.shapes[i], dtype));
  const data = async (xs: np.Array[]) => await Promise.all(xs.map((x) => x.data()));
  const [value, grads] = valueAndGrad(f)(arr(c.params));
  // H·v = d/dε ∇f(p + εv): forward mode over the reverse-mode gradient.
  const [grads2, hvps] = jvp(grad(f), [arr(c.params)], [arr(c.dirs)]);
  const [primal, tangent] = jvp(f, [arr(c.params)], [arr(c.dirs)]);
  primal.dispose();
  return {
    value: (await value.data())[0],
    jvp: (await tangent.data())[0],
    grads: await data(grads),
    hvps: await data(hvps),
    gradsViaJvp: await data(grads2),
  };
}

const flat = (xs: ArrayLike<number>[]) => Float64Array.from(xs.flatMap((x) => Array.from(x)));
const scalarErr = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
const e = (x: number) => x.toExponential(2);

async function crossCheck(c: Case): Promise<void> {
  const o = await runOurs(c);
  const j32 = await runJax(c, np.float32);
  const j64 = await runJax(c, np.float64);
  const errs = {
    value: scalarErr(o.value, j32.value),
    jvp: scalarErr(o.jvp, j32.jvp),
    grad: relErr(flat(o.grads), flat(j32.grads)),
    hvp: relErr(flat(o.hvps), flat(j32.hvps)),
  };
  // Per parameter tensor too, so one bad tensor cannot hide in the others' norm.
  const perGrad = o.grads.map((g, i) => relErr(g, j32.grads[i]));
  const perHvp = o.hvps.map((g, i) => relErr(g, j32.hvps[i]));
  const vs64 = (a: ArrayLike<number>[], b: ArrayLike<number>[]) => e(relErr(flat(a), flat(b)));
  console.log(
    `  ours vs jax-js f32: loss ${e(errs.value)}, jvp ${e(errs.jvp)}, grad ${e(errs.grad)} ` +
      `(per tensor ${perGrad.map(e).join(" ")}), hvp ${e(errs.hvp)} (per tensor ${
        perHvp.map(e).join(" ")
      })`,
  );
  console.log(
    `  vs jax-js f64 (ours | jax-js f32): loss ${e(scalarErr(o.value, j64.value))} | ${
      e(scalarErr(j32.value, j64.value))
    }, grad ${vs64(o.grads, j64.grads)} | ${vs64(j32.grads, j64.grads)}, hvp ${
      vs64(o.hvps, j64.hvps)
    } | ${vs64(j32.hvps, j64.hvps)}`,
  );
  for (const [k, v] of Object.entries(errs)) {
    if (!(v <= 1e-4)) throw new Error(`${k}: relative error ${v} > 1e-4 against jax-js`);
  }
  perGrad.forEach((v, i) => {
    if (!(v <= 1e-4)) throw new Error(`gradient of parameter ${i}: relative error ${v}`);
  });
  perHvp.forEach((v, i) => {
    if (!(v <= 1e-4)) throw new Error(`H·v of parameter ${i}: relative error ${v}`);
  });
  // jax-js's own consistency: the primal out of jvp(grad f) is the reverse-mode gradient.
  if (!(relErr(flat(j32.gradsViaJvp), flat(j32.grads)) <= 1e-6)) {
    throw new Error("jax-js: jvp(grad f) primal ≠ grad f");
  }
  // Not a degenerate point: nonzero gradient and curvature along v in every tensor.
  j64.grads.concat(j64.hvps).forEach((g, i) => {
    if (!(Math.hypot(...Array.from(g)) > 1e-4)) throw new Error(`degenerate test point (${i})`);
  });
}

Deno.test("jax-js cross-check, PERK block (RMSNorm, LoRA q/v, RoPE, causal attention, weighted CE): loss, ∇, JVP, HVP ≤ 1e-4", async () => {
  await crossCheck(perkCase());
});

Deno.test("jax-js cross-check, batch 2 (LayerNorm w/b, GQA attention with segments, SwiGLU with LoRA): loss, ∇, JVP, HVP ≤ 1e-4", async () => {
  await crossCheck(gqaCase());
});
