/**
 * Differentiable basic ops: elementwise with broadcasting, the unary table, reductions,
 * shape ops and matmul. Each op = one Rule (forward, JVP, VJP side by side). The plain
 * kernels live in kernels/ops and kernels/matmul; this file only says how they differentiate.
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as ew from "../ops/elementwise.ts";
import * as red from "../ops/reduce.ts";
import * as st from "../ops/strided.ts";
import { matmul as mm, type MatmulOptions } from "../matmul/matmul.ts";
import { UNARY, type UnaryName } from "../ops/unary_table.ts";
import { broadcastShapes, normAxis, sameShape } from "../ops/shape.ts";
import { apply1, cotangentSink, type MaybeTensor, type Rule, setCotangentAdd } from "./tape.ts";

// ------------------------------------------------------------------ helpers

/** Sum a broadcast cotangent back to `shape` (identity when shapes agree). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  let t = g;
  const lead = g.shape.length - shape.length;
  for (let i = 0; i < lead; i++) t = sum(t, 0);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1 && t.shape[d] !== 1) t = sum(t, d, true);
  }
  return sameShape(t.shape, shape) ? t : reshape(t, shape);
}

// ------------------------------------------------------------------ elementwise

type Bin = "add" | "sub" | "mul" | "div";
const binRule: Record<Bin, Rule> = {
  add: {
    name: "add",
    saveInputs: false,
    forward: ([a, b]) => [ew.add(a, b)],
    jvp: ([a, b], [da, db]) => {
      const shape = broadcastShapes(a.shape, b.shape);
      const t = da && db ? ew.add(da, db) : da ?? db;
      return [t && !sameShape(t.shape, shape) ? st.expand(t, shape) : t];
    },
    vjp: (
      [a, b],
      _,
      [g],
      __,
      [na, nb],
    ) => [na ? sumTo(g!, a.shape) : undefined, nb ? sumTo(g!, b.shape) : undefined],
  },
  sub: {
    name: "sub",
    saveInputs: false,
    forward: ([a, b]) => [ew.sub(a, b)],
    jvp: ([a, b], [da, db]) => {
      const shape = broadcastShapes(a.shape, b.shape);
      const t = da && db
        ? ew.sub(da, db)
        : da
        ? ew.scale(da, 1)
        : db
        ? ew.scale(db, -1)
        : undefined;
      return [t && !sameShape(t.shape, shape) ? st.expand(t, shape) : t];
    },
    vjp: ([a, b], _, [g], __, [na, nb]) => [
      na ? sumTo(g!, a.shape) : undefined,
      nb ? sumTo(scale(g!, -1), b.shape) : undefined,
    ],
  },
  mul: {
    name: "mul",
    forward: ([a, b]) => [ew.mul(a, b)],
    jvp: ([a, b], [da, db]) => {
      // ȧ·b + a·ḃ in one pass when both tangents are there.
      const t = da && db
        ? ew.mapN("a * b + c * d", [da, b, a, db])
        : da
        ? ew.mul(da, b)
        : db && ew.mul(a, db);
      const shape = broadcastShapes(a.shape, b.shape);
      return [t && !sameShape(t.shape, shape) ? st.expand(t, shape) : t];
    },
    vjp: ([a, b], _, [g], __, [na, nb]) => [
      na ? sumTo(mul(g!, b), a.shape) : undefined,
      nb ? sumTo(mul(g!, a), b.shape) : undefined,
    ],
  },
  div: {
    name: "div",
    forward: ([a, b]) => [ew.div(a, b)],
    jvp: ([a, b], [da, db]) => {
      // d(a/b) = da/b − a·db/b²
      const t1 = da && ew.div(da, b), t2 = db && ew.mapN("-a * b / (c * c)", [a, db, b]);
      const shape = broadcastShapes(a.shape, b.shape);
      const t = t1 && t2 ? ew.add(t1, t2) : t1 ?? t2;
      return [t && !sameShape(t.shape, shape) ? st.expand(t, shape) : t];
    },
    vjp: ([a, b], _, [g], __, [na, nb]) => [
      na ? sumTo(div(g!, b), a.shape) : undefined,
      nb ? sumTo(neg(div(mul(g!, a), mul(b, b))), b.shape) : undefined,
    ],
  },
};
export const add = (a: Tensor, b: Tensor) => apply1(binRule.add, [a, b], undefined);
export const sub = (a: Tensor, b: Tensor) => apply1(binRule.sub, [a, b], undefined);
export const mul = (a: Tensor, b: Tensor) => apply1(binRule.mul, [a, b], undefined);
export const div = (a: Tensor, b: Tensor) => apply1(binRule.div, [a, b], undefined);
setCotangentAdd(add);

const scaleRule: Rule<{ s: number; t: number }> = {
  name: "scale",
  saveInputs: false,
  forward: ([a], { s, t }) => [ew.scale(a, s, { shift: t })],
  jvp: (_, [da], __, { s }) => [da && ew.scale(da, s)],
  vjp: (_, __, [g], { s }) => [scale(g!, s)],
};
/** s·a + t. */
export const scale = (a: Tensor, s: number, t = 0) => apply1(scaleRule, [a], { s, t });
export const neg = (a: Tensor) => scale(a, -1);

const unaryRules = new Map<string, Rule<{ q: number }>>();
const unaryGradRules = new Map<string, Rule<{ q: number }>>();

/** g·f'(x) as its own op, so its tangent (ġ·f' + g·f''·ẋ) is one fused kernel. */
function unaryGradRule(name: UnaryName): Rule<{ q: number }> {
  let r = unaryGradRules.get(name);
  if (r) return r;
  const d = UNARY[name];
  r = {
    name: `${name}_grad`,
    forward: ([x, g], { q }) => [ew.unaryGrad(name, x, g, q)],
    jvp: ([x, g], [dx, dg], _, { q }) => {
      if (!dx && !dg) return [undefined];
      const z = (t: MaybeTensor, like: Tensor) => t ?? ew.scale(like, 0);
      return [ew.unaryGradTangent(name, x, z(dg, g), g, z(dx, x), q)];
    },
    vjp: ([x, g], _, [h], { q }) => {
      // y = g·f'(x): ∂/∂x = h·g·f''(x), ∂/∂g = h·f'(x). Third order is not needed by PERK,
      // but keeping the rule complete lets grad-of-grad work through unary ops.
      const f2 = ew.mapN(`b * c * ${d.d2.replace(/\bx\b/g, "a").replace(/\bq\b/g, "p.x")}`, [
        x,
        h!,
        g,
      ], {
        params: [q],
      });
      return [f2, ew.unaryGrad(name, x, h!, q)];
    },
  };
  unaryGradRules.set(name, r);
  return r;
}

/** A unary function from the table (exp, log, tanh, sigmoid, softplus β, gelu, gelu_tanh, silu …). */
export function unary(name: UnaryName, x: Tensor, q = 1): Tensor {
  let r = unaryRules.get(name);
  if (!r) {
    r = {
      name,
      forward: ([x], { q }) => [ew.unary(name, x, q)],
      jvp: ([x], [dx], _, { q }) => [dx && ew.unaryGrad(name, x, dx, q)],
      vjp: ([x], _, [g], { q }) => [apply1(unaryGradRule(name), [x, g!], { q })],
    };
    unaryRules.set(name, r);
  }
  return apply1(r, [x], { q });
}
export const exp = (x: Tensor) => unary("exp", x);
export const log = (x: Tensor) => unary("log", x);
export const tanh = (x: Tensor) => unary("tanh", x);
export const sigmoid = (x: Tensor) => unary("sigmoid", x);
export const softplus = (x: Tensor, beta = 1) => unary("softplus", x, beta);
export const gelu = (x: Tensor) => unary("gelu", x);
export const geluTanh = (x: Tensor) => unary("gelu_tanh", x);
export const silu = (x: Tensor) => unary("silu", x);
export const square = (x: Tensor) => unary("square", x);
export const rsqrt = (x: Tensor) => unary("rsqrt", x);

// ------------------------------------------------------------------ reductions

const keptShape = (shape: readonly number[], ax: number) => shape.map((d, i) => (i === ax ? 1 : d));

const sumRule: Rule<{ axis: number; keep: boolean }> = {
  name: "sum",
  saveInputs: false,
  forward: ([x], { axis, keep }) => [red.sum(x, axis, keep)],
  jvp: (_, [dx], __, { axis, keep }) => [dx && red.sum(dx, axis, keep)],
  vjp: ([x], _, [g], { axis }) => [expand(reshape(g!, keptShape(x.shape, axis)), x.shape)],
};
export function sum(x: Tensor, axis = -1, keepDims = false): Tensor {
  return apply1(sumRule, [x], { axis: normAxis(axis, x.shape.length), keep: keepDims });
}
export function mean(x: Tensor, axis = -1, keepDims = false): Tensor {
  return scale(sum(x, axis, keepDims), 1 / x.shape[normAxis(axis, x.shape.length)]);
}
/** Sum of all elements, shape [1]. */
export function sumAll(x: Tensor): Tensor {
  return sum(reshape(x, [x.size]), 0, true);
}

const maxRule: Rule<{ axis: number; keep: boolean }> = {
  name: "max",
  saveOutputs: true,
  forward: ([x], { axis, keep }) => [red.max(x, axis, keep)],
  jvp: ([x], [dx], [y], { axis }) => {
    if (!dx) return [undefined];
    // ẏ = mean of ẋ over the arg-max positions (ties share).
    const yk = y.view(keptShape(x.shape, axis));
    const hit = ew.mapN("select(0.0, 1.0, a == b)", [x, yk]);
    return [ew.div(red.sum(ew.mul(hit, dx), axis), red.sum(hit, axis)).view(y.shape)];
  },
  vjp: ([x], [y], [g], { axis }) => {
    const yk = reshape(y, keptShape(x.shape, axis));
    // The arg-max pattern is locally constant: a plain (tangent-free) tensor.
    const hit = ew.mapN("select(0.0, 1.0, a == b)", [x, yk]);
    const cnt = red.sum(hit, axis, true);
    return [mul(div(hit, cnt), reshape(g!, keptShape(x.shape, axis)))];
  },
};
/** Max along an axis; the gradient is shared equally among tied maxima. */
export function max(x: Tensor, axis = -1, keepDims = false): Tensor {
  return apply1(maxRule, [x], { axis: normAxis(axis, x.shape.length), keep: keepDims });
}

// ------------------------------------------------------------------ shape ops

const reshapeRule: Rule<{ shape: readonly number[] }> = {
  name: "reshape",
  saveInputs: false,
  forward: ([x], { shape }) => [x.view(shape)],
  jvp: (_, [dx], __, { shape }) => [dx && dx.view(shape)],
  vjp: ([x], _, [g]) => [reshape(g!, x.shape)],
};
/** Same data, new shape (a view: no copy). One dimension may be -1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.reduce((a, d) => (d === -1 ? a : a * d), 1);
  const s = shape.map((d) => (d === -1 ? x.size / known : d));
  return apply1(reshapeRule, [x], { shape: s });
}

const permuteRule: Rule<{ perm: readonly number[] }> = {
  name: "permute",
  saveInputs: false,
  forward: ([x], { perm }) => [st.permute(x, perm)],
  jvp: (_, [dx], __, { perm }) => [dx && st.permute(dx, perm)],
  vjp: (_, __, [g], { perm }) => {
    const inv = new Array(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [permute(g!, inv)];
  },
};
export const permute = (x: Tensor, perm: readonly number[]) => apply1(permuteRule, [x], { perm });
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  return permute(x, st.swapPerm(x.shape.length, a, b));
}

const expandRule: Rule<{ shape: readonly number[] }> = {
  name: "expand",
  saveInputs: false,
  forward: ([x], { shape }) => [st.expand(x, shape)],
  jvp: (_, [dx], __, { shape }) => [dx && st.expand(dx, shape)],
  vjp: ([x], _, [g]) => {
    const s = sumTo(g!, x.shape);
    return [s === g ? scale(g!, 1) : s];
  },
};
export const expand = (x: Tensor, shape: readonly number[]) =>
  apply1(expandRule, [x], { shape: broadcastShapes(x.shape, shape) });

const padSliceRule: Rule<{ axis: number; start: number; full: readonly number[] }> = {
  name: "pad_slice",
  saveInputs: false,
  forward: ([x], { axis, start, full }) => {
    const out = x.rt.zeros(full);
    st.sliceInto(out, x, axis, start);
    return [out];
  },
  jvp: (_, [dx], __, p) => [dx && padSliceRule.forward([dx], p)[0]],
  vjp: ([x], _, [g], { axis, start }) => [slice(g!, axis, start, x.shape[axis])],
};
const sliceRule: Rule<{ axis: number; start: number; len: number }> = {
  name: "slice",
  saveInputs: false,
  forward: ([x], { axis, start, len }) => [st.slice(x, axis, start, len)],
  jvp: (_, [dx], __, { axis, start, len }) => [dx && st.slice(dx, axis, start, len)],
  vjp: ([x], _, [g], { axis, start }) => [
    apply1(padSliceRule, [g!], { axis, start, full: x.shape }),
  ],
};
export function slice(x: Tensor, axis: number, start: number, len: number): Tensor {
  return apply1(sliceRule, [x], { axis: normAxis(axis, x.shape.length), start, len });
}

const concatRule: Rule<{ axis: number }> = {
  name: "concat",
  saveInputs: false,
  forward: (xs, { axis }) => [st.concat(xs, axis)],
  jvp: (xs, dxs, __, { axis }) =>
    dxs.some((d) => d) ? [st.concat(xs.map((x, i) => dxs[i] ?? x.rt.zeros(x.shape)), axis)] : [
      undefined,
    ],
  vjp: (xs, _, [g], { axis }) => {
    let at = 0;
    return xs.map((x) => {
      const s = slice(g!, axis, at, x.shape[axis]);
      at += x.shape[axis];
      return s;
    });
  },
};
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  return apply1(concatRule, xs, { axis: normAxis(axis, xs[0].shape.length) });
}

// ------------------------------------------------------------------ matmul

export interface MatmulFlags {
  readonly transA?: boolean;
  readonly transB?: boolean;
  /** C = α·op(A)·op(B) (+ bias): the scale rides in the matmul's epilogue (no extra pass). */
  readonly alpha?: number;
}
const batchOf = (t: Tensor) => t.shape.slice(0, -2).reduce((a, b) => a * b, 1);

/** Which optional inputs a matmul node has: [a, b, bias?, addend?]. */
interface MatmulP extends MatmulFlags {
  readonly hasBias: boolean;
  readonly hasAddend: boolean;
  /** Write the result (its tangent) here: a leaf's cotangent sink (tape.ts), VJPs only. */
  readonly out?: Tensor;
  readonly tangentOut?: Tensor;
}
const matmulParts = <T>(xs: readonly T[], p: MatmulP) => ({
  bias: p.hasBias ? xs[2] : undefined,
  addend: p.hasAddend ? xs[p.hasBias ? 3 : 2] : undefined,
});
const flagsOf = ({ transA, transB, alpha }: MatmulP) => ({ transA, transB, alpha });

const matmulRule: Rule<MatmulP> = {
  name: "matmul",
  // The vjp reads a and b; bias and addend only for their shapes.
  saveInputs: [0, 1],
  forward: ([a, b, ...rest], p) => {
    const { bias, addend } = matmulParts([a, b, ...rest], p);
    return [mm(a, b, { ...flagsOf(p), bias, accumulate: addend, out: p.out } as MatmulOptions)];
  },
  jvp: ([a, b], dxs, [y], p) => {
    // Ċ = α·(op(Ȧ)·op(B) + op(A)·op(Ḃ)) + ḃias + Ḋ: bias and addend tangents ride on the
    // first product's epilogue (α is in the flags, so each product carries it).
    const [da, db] = dxs;
    const { bias: dbias, addend: dd } = matmulParts(dxs, p);
    const f = flagsOf(p);
    const out = p.tangentOut;
    let t: MaybeTensor = da && mm(da, b, { ...f, bias: dbias, accumulate: dd, out });
    if (db) {
      t = t
        ? mm(a, db, { ...f, accumulate: t, out: t })
        : mm(a, db, { ...f, bias: dbias, accumulate: dd, out });
    }
    if (!t && dbias) t = dd ? ew.add(dd, dbias) : st.expand(dbias, y.shape);
    if (!t && dd) t = ew.scale(dd, 1);
    return [t];
  },
  vjp: ([a, b, ...rest], _, [g], p, needs) => {
    const { transA, transB, alpha = 1 } = p;
    const [na, nb] = needs;
    const { bias } = matmulParts([a, b, ...rest], p);
    const { bias: nbias, addend: nd } = matmulParts(needs, p);
    const G = g!;
    const al = alpha === 1 ? {} : { alpha }; // C = α·op(A)·op(B): both cotangents carry α
    let ga: Tensor | undefined, gb: Tensor | undefined;
    if (transA && transB) throw new Error("matmul: Aᵀ·Bᵀ has no VJP rule (transpose one operand)");
    // A leaf's cotangent goes straight into its sink when the caller gave one (tape.ts).
    const sa = na ? sinkFlags(a) : {}, sbk = nb ? sinkFlags(b) : {};
    // C = op(A)·op(B)
    if (!na) ga = undefined;
    else if (!transA) {
      ga = transB
        ? matmulTo(G, b, { ...al, ...sa })
        : matmulTo(G, b, { transB: true, ...al, ...sa });
    } else ga = matmulTo(b, G, { transB: true, ...al, ...sa }); // A (K,M): dA = B·Gᵀ
    const bBatched = b.shape.length > 2 && batchOf(b) > 1;
    const aBatched = a.shape.length > 2 && batchOf(a) > 1;
    if (!nb) gb = undefined;
    else if (aBatched && !bBatched) {
      // dB sums over the batch: flatten (batch·M) rows where the layout allows.
      const flat = (t: Tensor) => reshape(t, [t.size / t.shape.at(-1)!, t.shape.at(-1)!]);
      if (!transA) {
        gb = transB ? matmul(flat(G), flat(a), { transA: true, ...al }) : matmul(flat(a), flat(G), {
          transA: true,
          ...al,
        });
      } else gb = sum(reshape(matmul(a, G, al), [batchOf(a), b.shape.at(-2)!, b.shape.at(-1)!]), 0);
      gb = reshape(gb, b.shape);
    } else {
      if (!transA) {
        gb = transB
          ? matmulTo(G, a, { transA: true, ...al, ...sbk })
          : matmulTo(a, G, { transA: true, ...al, ...sbk });
      } else gb = matmulTo(a, G, { ...al, ...sbk });
    }
    const out: MaybeTensor[] = [ga, gb];
    if (p.hasBias) out.push(bias && nbias ? sumTo(G, bias.shape) : undefined);
    if (p.hasAddend) out.push(nd ? G : undefined); // ∂C/∂D = I
    return out;
  },
};
/** The sink of x's cotangent as matmul outputs (empty: none, or not an exact fit). */
function sinkFlags(x: Tensor): { out?: Tensor; tangentOut?: Tensor } {
  const s = cotangentSink(x);
  return s ? { out: s.value, tangentOut: s.tangent } : {};
}
/**
 * α·op(A)·op(B) as the cotangent of `leaf`, inside a VJP rule: written straight into the
 * leaf's sink when the caller asked for one (tape.ts `cotangentSink`). A plain product else.
 */
export const matmulCotangent = (a: Tensor, b: Tensor, f: MatmulFlags, leaf: Tensor): Tensor =>
  matmulTo(a, b, { ...f, ...sinkFlags(leaf) });
/** A plain product written into given outputs (inside VJPs: a leaf's cotangent sink). */
const matmulTo = (
  a: Tensor,
  b: Tensor,
  f: MatmulFlags & { out?: Tensor; tangentOut?: Tensor },
) => apply1(matmulRule, [a, b], { ...f, hasBias: false, hasAddend: false });

/**
 * α·op(A)·op(B) (+ bias) (+ addend); batched over A's leading dims (B shared or batched
 * alike). `addend` (the result's shape) is added in the epilogue: `y + x·A·B` costs no
 * separate add pass.
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  f: MatmulFlags & { bias?: Tensor; addend?: Tensor } = {},
): Tensor {
  const { bias, addend, ...flags } = f;
  const xs = [a, b, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  return apply1(matmulRule, xs, { ...flags, hasBias: !!bias, hasAddend: !!addend });
}
