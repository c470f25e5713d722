/**
 * The LoRA linear y = x·W (+ b) + s·(drop(x)·A)·B as one rule, with the adapter's input
 * dropout inside its skinny products (../ops/lora_kernels.ts) instead of a pass of its own.
 *
 *   forward   y = x·W (+ b);  U = drop(x)·A (kept: the rule's second output);  y += s·U·B
 *   tangent   U̇ = drop(ẋ)·A + drop(x)·Ȧ (one kernel);  ẏ = ẋ·W + x·Ẇ + s·(U̇·B + U·Ḃ) + ḃ
 *   backward  Ū = s·G·Bᵀ;  x̄ = G·Wᵀ + drop(Ū·Aᵀ) (one kernel, accumulating);
 *             Ā = drop(x)ᵀ·Ū (one kernel);  B̄ = s·Uᵀ·G;  W̄ = xᵀ·G;  b̄ = Σ_rows G
 * The backward is written with differentiable ops, and the two LoRA kernels of it are rules
 * whose tangents are one kernel each, so an HVP (forward-over-reverse) stays short too. Ā and
 * B̄ go straight into their sinks when the caller asked for them (tape.ts; packed LoRA sets).
 * A frozen W (not differentiated) gets no W̄; x̄ is skipped for an input that needs none.
 * The composed form (matmuls and a dropout) is the reference the tests check against.
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as ew from "../ops/elementwise.ts";
import { expand as ewExpand } from "../ops/strided.ts";
import { matmul as mm } from "../matmul/matmul.ts";
import * as K from "../ops/lora_kernels.ts";
import { apply, apply1, cotangentSink, type MaybeTensor, type Rule } from "./tape.ts";
import { matmul, matmulCotangent, sumTo } from "./basic.ts";
import { linearForward } from "./product.ts";

export interface LoraWeights {
  readonly A: Tensor; // (in, r)
  readonly B: Tensor; // (r, out)
  readonly scale: number;
  /** Seeded dropout on the LoRA input (training only). */
  readonly dropout?: { p: number; seed: number };
}

interface LoraP {
  readonly scale: number;
  readonly hasBias: boolean;
  readonly drop?: K.LoraDrop;
}

type Pair = { p: Tensor; q: Tensor };
/** The products whose operands exist (a tangent term with a zero factor is dropped). */
const pairs = (...ps: (false | undefined | Pair)[]) => ps.filter((p): p is Pair => !!p);

const third = () => {
  throw new Error("LoRA linear: third-order derivatives are not implemented");
};

/** out (shape `like`) = C + drop(G·Aᵀ): the LoRA part of x̄, accumulated onto C = G·Wᵀ. */
const upRule: Rule<{ like: readonly number[]; drop?: K.LoraDrop }> = {
  name: "lora_up",
  saveInputs: [0, 1],
  forward: ([G, A, C], p) => [K.loraUp([{ p: G, q: A }], p.like, p.drop, C)],
  jvp: ([G, A], [dG, dA, dC], _, p) => {
    const ps = pairs(dG && { p: dG, q: A }, dA && { p: G, q: dA });
    return [ps.length ? K.loraUp(ps, p.like, p.drop, dC) : dC];
  },
  vjp: third,
};

/** Ā = drop(x)ᵀ·Ū, written into A's cotangent sink when there is one. */
const gradARule: Rule<{
  inDim: number;
  r: number;
  drop?: K.LoraDrop;
  out?: Tensor;
  tangentOut?: Tensor;
}> = {
  name: "lora_grad_a",
  forward: ([x, G], p) => [K.loraGradA([{ p: x, q: G }], p.inDim, p.r, p.drop, p.out)],
  jvp: ([x, G], [dx, dG], _, p) => {
    const ps = pairs(dx && { p: dx, q: G }, dG && { p: x, q: dG });
    return [ps.length ? K.loraGradA(ps, p.inDim, p.r, p.drop, p.tangentOut) : undefined];
  },
  vjp: third,
};

const loraRule: Rule<LoraP> = {
  name: "lora_linear",
  // x's cotangent from its other uses (q, k, v share one input) rides in G·Wᵀ's epilogue.
  accumulates: [0],
  saveInputs: [0, 1, 2, 3], // x, W, A, B (the bias only for its shape)
  saveOutputs: [1], // U
  forward: ([x, W, A, B, bias], p) => {
    const y = linearForward(x, W, p.hasBias ? bias : undefined, false);
    const U = K.loraDown([{ p: x, q: A }], p.drop); // (rows, r)
    mm(U, B, { alpha: p.scale, accumulate: y, out: y });
    return [y, U];
  },
  jvp: ([x, W, A, B], [dx, dW, dA, dB, db], [y, U], p) => {
    const ps = pairs(dx && { p: dx, q: A }, dA && { p: x, q: dA });
    const dU = ps.length ? K.loraDown(ps, p.drop) : undefined;
    let t: Tensor | undefined;
    const acc = (a: Tensor, b: Tensor, alpha = 1) =>
      t ? mm(a, b, { alpha, accumulate: t, out: t }) : (t = mm(a, b, { alpha }));
    if (dx) acc(dx, W);
    if (dW) acc(x, dW);
    if (dU) acc(dU, B, p.scale);
    if (dB) acc(U, dB, p.scale);
    if (db) t = t ? ew.add(t, db) : ewExpand(db, y.shape);
    return [t, dU];
  },
  vjp: ([x, W, A, B, bias], [_y, U], [g, gU], p, [nx, nW, nA, nB, nb], [acc]) => {
    if (gU) throw new Error("LoRA linear: its second output (drop(x)·A) is internal");
    const G = g!;
    const Ub = nx || nA ? matmul(G, B, { transB: true, alpha: p.scale }) : undefined; // (rows, r)
    let gx: MaybeTensor;
    if (nx) {
      const base = matmul(G, W, { transB: true, addend: acc });
      gx = apply1(upRule, [Ub!, A, base], { like: x.shape, drop: p.drop });
    }
    let gA: MaybeTensor;
    if (nA) {
      const s = cotangentSink(A);
      gA = apply1(gradARule, [x, Ub!], {
        inDim: A.shape[0],
        r: A.shape[1],
        drop: p.drop,
        out: s?.value,
        tangentOut: s?.tangent,
      });
    }
    return [
      gx,
      nW ? matmul(x, G, { transA: true }) : undefined,
      gA,
      nB ? matmulCotangent(U, G, { transA: true, alpha: p.scale }, B) : undefined,
      ...(p.hasBias ? [nb ? sumTo(G, bias.shape) : undefined] : []),
    ];
  },
};

/** y = x·W (+ b) + s·((dropout(x)·A)·B), x (rows, in); fused as described above. */
export function loraLinear(x: Tensor, W: Tensor, bias?: Tensor, lora?: LoraWeights): Tensor {
  if (!lora) return matmul(x, W, { bias });
  if (x.shape.length !== 2) {
    throw new RangeError(`loraLinear: x must be (rows, in), got [${x.shape}] (reshape first)`);
  }
  const p: LoraP = {
    scale: lora.scale,
    hasBias: !!bias,
    drop: lora.dropout && lora.dropout.p > 0 ? lora.dropout : undefined,
  };
  return apply(loraRule, bias ? [x, W, lora.A, lora.B, bias] : [x, W, lora.A, lora.B], p)[0];
}
