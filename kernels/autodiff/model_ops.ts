/**
 * Model-specific GPU pieces the autodiff core does not have, each a small Rule or kernel:
 *  - `frozenLinear`: x·W (+ b) whose VJP gives only ∂x — the core's matmul VJP always
 *    computes ∂W too, which for a frozen base weight is a wasted matmul as big as the forward;
 *  - `embedding`: row gather from an i32 id tensor (ids may stay on the GPU, as in batched
 *    generation), differentiable w.r.t. the table through the core's scatter-add;
 *  - `ropeAt`: rotary embedding at per-token positions (left-padded rows have different
 *    positions), on the (tokens, heads·hd) layout the projections produce;
 *  - `argmaxRows`: greedy decoding's per-row argmax, so only B ids are read back per step;
 *  - `sliceI32`: a range of an i32 tensor (target chunks; the strided copy moves f32).
 */
import type { Tensor } from "../runtime/tensor.ts";
import { kernel } from "../runtime/kernel.ts";
import { texelLoadFn } from "../runtime/texels.ts";
import { matmul as mm } from "../matmul/matmul.ts";
import { linearForward } from "./product.ts";
import { apply1, type Rule } from "./tape.ts";
import { matmul } from "./basic.ts";
import { RowIndex, scatterAdd } from "./nn.ts";
import { gatherRowsById } from "../ops/nn_kernels.ts";

// ------------------------------------------------------------------ frozen linear

interface LinP {
  readonly transB: boolean;
}
// The product's kernel choice (few rows: another path) is product.ts's.
const frozenLinearRule: Rule<LinP> = {
  name: "frozen_linear",
  saveInputs: [1], // W only (frozen: the reference costs nothing)
  accumulates: [0], // x's cotangent from its other uses rides in the product's epilogue
  forward: ([x, W, b], { transB }) => [linearForward(x, W, b, transB)],
  jvp: ([_x, W], [dx], __, { transB }) => [dx && mm(dx, W, { transB })],
  // Written with the differentiable matmul so tangents on g flow (hvp).
  vjp: ([_x, W], __, [g], { transB }, _needs, [acc]) => [
    transB ? matmul(g!, W, { addend: acc }) : matmul(g!, W, { transB: true, addend: acc }),
  ],
};
/**
 * y = x·W (+ b), or x·Wᵀ with `transB`, treating W and b as constants: no gradient is
 * computed for them (use the core's `matmul` when they are being trained).
 */
export function frozenLinear(x: Tensor, W: Tensor, bias?: Tensor, transB = false): Tensor {
  return apply1(frozenLinearRule, bias ? [x, W, bias] : [x, W], { transB });
}

// ------------------------------------------------------------------ embedding

const gatherIds = gatherRowsById;

interface EmbP {
  readonly ids: Tensor;
  readonly host?: Int32Array;
}
const embeddingRule: Rule<EmbP> = {
  name: "embedding",
  saveInputs: false,
  forward: ([w], { ids }) => [gatherIds(w, ids)],
  jvp: (_, [dw], __, { ids }) => [dw && gatherIds(dw, ids)],
  vjp: ([w], __, [g], { host }) => {
    if (!host) {
      throw new Error(
        "embedding: the table's gradient needs the ids on the host; pass an Int32Array of ids",
      );
    }
    // Deterministic scatter-add through the core (CSR grouping built on the host). The index
    // is freed right after recording: the dispatch keeps its buffers alive in the queue.
    const idx = new RowIndex(w.rt, host, w.shape[0]);
    try {
      return [scatterAdd(g!, idx)];
    } finally {
      idx.dispose();
    }
  },
};
/** table (V, C) rows at ids (N, i32) → (N, C); `host` (the same ids) enables ∂table. */
export function embedding(table: Tensor, ids: Tensor, host?: Int32Array): Tensor {
  if (ids.dtype !== "i32") throw new TypeError(`embedding: ids must be i32, got ${ids}`);
  return apply1(embeddingRule, [table], { ids, host });
}

// ------------------------------------------------------------------ RoPE at positions

const ROPE_U = { n: "u32", D: "u32", row: "u32", sign: "f32" } as const;
// x (tokens, heads·D): token r rotates at position POS[r]; half-split pairs (j, j + D/2).
// sign −1 is the inverse (= transpose) rotation, for the VJP.
const ROPE_AT = kernel({
  name: "rope_at",
  inputs: { X: "f32", COS: "f32", SIN: "f32", POS: "i32" },
  outputs: { Y: "f32" },
  uniforms: ROPE_U,
  lanes: "u.n",
  body: /* wgsl */ `
  let half = u.D / 2u;
  let j = id % u.D;
  let f = u32(POS[id / u.row]) * half + (j % half);
  let s = u.sign * SIN[f];
  if (j < half) { Y[id] = X[id] * COS[f] - X[id + half] * s; }
  else { Y[id] = X[id] * COS[f] + X[id - half] * s; }`,
});

/**
 * The same rotation, one lane per 4 pairs (8 outputs) with x and the tables read as staged
 * texels (kernels/runtime/texels.ts: lavapipe's storage loads are per-lane loops): for
 * headDim % 8 = 0 on CPU adapters. u.n counts lanes.
 */
const ROPE_AT_TEX = kernel({
  name: "rope_at_tex",
  inputs: { X: "texture", COS: "texture", SIN: "texture", POS: "i32" },
  outputs: { Y: "vec4f" },
  uniforms: ROPE_U,
  decls: [texelLoadFn("ldX", "X"), texelLoadFn("ldCos", "COS"), texelLoadFn("ldSin", "SIN")]
    .join("\n"),
  lanes: "u.n",
  body: /* wgsl */ `
  let half = u.D / 2u;
  let lanesPerRow = u.row / 8u;
  let r = id / lanesPerRow;
  let c = id % lanesPerRow;
  let j0 = (c % (u.D / 8u)) * 4u; // first of 4 pairs (j0 … j0+3, partners + half)
  let base = r * u.row + (c / (u.D / 8u)) * u.D + j0;
  let f = (u32(POS[r]) * half + j0) / 4u;
  let x1 = ldX(base / 4u);
  let x2 = ldX((base + half) / 4u);
  let co = ldCos(f);
  let s = u.sign * ldSin(f);
  Y[base / 4u] = x1 * co - x2 * s;
  Y[(base + half) / 4u] = x2 * co + x1 * s;`,
});

interface RopeP {
  readonly headDim: number;
}
function ropeAtKernel(xs: readonly Tensor[], headDim: number, inverse: boolean): Tensor {
  const [x, cos, sin, pos] = xs;
  const row = x.shape.at(-1)!, rt = x.rt;
  const y = rt.empty(x.shape);
  const tex = rt.isCpuAdapter && headDim % 8 === 0 && rt.texelsFit(x.size) &&
    rt.texelsFit(cos.size);
  const lanes = tex ? x.size / 8 : x.size;
  const u = { n: lanes, D: headDim, row, sign: inverse ? -1 : 1 };
  if (tex) {
    const bs = [rt.texels(x, 0), rt.texels(cos, 1), rt.texels(sin, 2)];
    ROPE_AT_TEX.run(rt, [...bs, pos, y], u, lanes);
  } else {
    ROPE_AT.run(rt, [x, cos, sin, pos, y], u, x.size);
  }
  return y;
}
// The tables and positions are inputs (not parameters) so the tape holds them until the
// backward pass has used them, even when the caller's scope has already released them.
const ropeAtRule: Rule<RopeP> = {
  name: "rope_at",
  saveInputs: [1, 2, 3],
  forward: (xs, { headDim }) => [ropeAtKernel(xs, headDim, false)],
  jvp: ([_, ...t], [dx], __, { headDim }) => [dx && ropeAtKernel([dx, ...t], headDim, false)],
  vjp: ([_, ...t], __, [g], p) => [apply1(ropeAtInvRule, [g!, ...t], p)],
};
const ropeAtInvRule: Rule<RopeP> = {
  name: "rope_at_t",
  saveInputs: [1, 2, 3],
  forward: (xs, { headDim }) => [ropeAtKernel(xs, headDim, true)],
  jvp: ([_, ...t], [dx], __, { headDim }) => [dx && ropeAtKernel([dx, ...t], headDim, true)],
  vjp: ([_, ...t], __, [g], p) => [apply1(ropeAtRule, [g!, ...t], p)],
};
/**
 * Rotate x (tokens, heads·headDim) — each row one token — at positions pos (tokens, i32),
 * with tables cos/sin (P, headDim/2) covering every position used (HF half-split layout).
 */
export function ropeAt(
  x: Tensor,
  cos: Tensor,
  sin: Tensor,
  pos: Tensor,
  headDim: number,
): Tensor {
  const tokens = x.size / x.shape.at(-1)!;
  if (pos.size !== tokens || pos.dtype !== "i32") {
    throw new RangeError(`ropeAt: positions ${pos} must be i32 with one entry per row of ${x}`);
  }
  if (x.shape.at(-1)! % headDim || headDim % 2 || cos.shape.at(-1) !== headDim / 2) {
    throw new RangeError(`ropeAt: ${x} is not heads × ${headDim} or tables ${cos} do not fit`);
  }
  return apply1(ropeAtRule, [x, cos, sin, pos], { headDim });
}

/**
 * float64 reference of ropeAt: rotates x (tokens, heads·D) at positions pos with angles
 * pos·10000^(−2j/D) computed here (not read from tables), HF half-split pairs; sign −1 is
 * the inverse rotation (rope_at_t, the VJP).
 */
export function ropeAtRef(
  x: ArrayLike<number>,
  D: number,
  heads: number,
  pos: ArrayLike<number>,
  sign = 1,
): Float64Array {
  const half = D / 2, row = heads * D, y = new Float64Array(x.length);
  for (let r = 0; r < pos.length; r++) {
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < half; j++) {
        const a = pos[r] * Math.pow(10000, (-2 * j) / D);
        const c = Math.cos(a), s = sign * Math.sin(a);
        const i1 = r * row + h * D + j, i2 = i1 + half;
        y[i1] = x[i1] * c - x[i2] * s;
        y[i2] = x[i2] * c + x[i1] * s;
      }
    }
  }
  return y;
}

// ------------------------------------------------------------------ hold

const holdRule: Rule<void> = {
  name: "hold",
  saveInputs: [1, 2, 3, 4, 5, 6, 7, 8], // the consts, not x
  forward: ([x]) => [x.view(x.shape)],
  jvp: (_, [dx]) => [dx],
  vjp: ([_x, ...rest], __, [g]) => [g, ...rest.map(() => undefined)],
};
/**
 * x itself (a view, no copy), with `consts` held by the tape until the backward pass has
 * gone past this point. For tensors that rules downstream of x read during the backward
 * pass through their parameters (cross-entropy targets) but that the caller's scope frees
 * when the differentiated function returns.
 */
export function holdWith(x: Tensor, consts: readonly Tensor[]): Tensor {
  if (consts.length > 8) throw new RangeError("holdWith: at most 8 tensors");
  return apply1(holdRule, [x, ...consts], undefined);
}

// ------------------------------------------------------------------ argmax

// One lane per row; the first maximum wins (as the reference's argmax).
const ARGMAX = kernel({
  name: "argmax_rows",
  inputs: { X: "f32" },
  outputs: { Y: "i32" },
  uniforms: { rows: "u32", V: "u32" },
  lanes: "u.rows",
  body: /* wgsl */ `
  let base = id * u.V;
  var best = 0u;
  var m = X[base];
  for (var v = 1u; v < u.V; v++) {
    let x = X[base + v];
    if (x > m) { m = x; best = v; }
  }
  Y[id] = i32(best);`,
});
/** Index of the largest value of each row of x (R, V) → (R) i32 (first one on ties). */
export function argmaxRows(x: Tensor): Tensor {
  const V = x.shape.at(-1)!, rows = x.size / V;
  const y = x.rt.empty([rows], "i32");
  ARGMAX.run(x.rt, [x, y], { rows, V }, rows);
  return y;
}

// ------------------------------------------------------------------ i32 slice

const SLICE_I32 = kernel({
  name: "slice_i32",
  inputs: { X: "i32" },
  outputs: { Y: "i32" },
  uniforms: { start: "u32", n: "u32" },
  lanes: "u.n",
  body: "  Y[id] = X[u.start + id];",
});
/** x[start : start + len] of a 1-D i32 tensor (a copy). */
export function sliceI32(x: Tensor, start: number, len: number): Tensor {
  if (x.dtype !== "i32" || start < 0 || start + len > x.size) {
    throw new RangeError(`sliceI32: [${start}, ${start + len}) of ${x}`);
  }
  const y = x.rt.empty([len], "i32");
  SLICE_I32.run(x.rt, [x, y], { start, n: len }, len);
  return y;
}
