/**
 * A LLaMA-style decoder stack written with the differentiable ops (RMSNorm, LoRA on every
 * linear, RoPE, grouped-query causal attention, SwiGLU MLP, weighted cross-entropy). It is
 * the core's end-to-end check (gradient and HVP w.r.t. the LoRA parameters against finite
 * differences) and the workload of the block benchmarks; the model layer builds the real
 * architectures the same way.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { add, matmul, mul, permute, reshape, scale, silu } from "../kernels/autodiff/basic.ts";
import {
  attention,
  loraLinear,
  rmsNorm,
  rope,
  weightedCrossEntropy,
} from "../kernels/autodiff/nn.ts";

export interface BlockConfig {
  readonly batch: number;
  readonly T: number;
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly hidden: number;
  readonly vocab: number;
  readonly layers: number;
  readonly rank: number;
  readonly loraScale: number;
}

export const LINEARS = ["q", "k", "v", "o", "gate", "up", "down"] as const;

/** (in, out) of each linear. */
export function linearShape(c: BlockConfig, name: (typeof LINEARS)[number]): [number, number] {
  const hd = c.dim / c.heads;
  switch (name) {
    case "q":
    case "o":
      return name === "q" ? [c.dim, c.heads * hd] : [c.heads * hd, c.dim];
    case "k":
    case "v":
      return [c.dim, c.kvHeads * hd];
    case "gate":
    case "up":
      return [c.dim, c.hidden];
    case "down":
      return [c.hidden, c.dim];
  }
}

/** Names and shapes of the frozen base weights and of the LoRA parameters, in order. */
export function blockParams(c: BlockConfig) {
  const base: [string, number[]][] = [];
  const lora: [string, number[]][] = [];
  for (let l = 0; l < c.layers; l++) {
    base.push([`l${l}.norm1`, [c.dim]], [`l${l}.norm2`, [c.dim]]);
    for (const n of LINEARS) {
      const [i, o] = linearShape(c, n);
      base.push([`l${l}.${n}`, [i, o]]);
      lora.push([`l${l}.${n}.A`, [i, c.rank]], [`l${l}.${n}.B`, [c.rank, o]]);
    }
  }
  base.push(["norm_f", [c.dim]], ["lm_head", [c.dim, c.vocab]]);
  return { base, lora };
}

export interface BlockInputs {
  /** (batch·T, dim) input embeddings. */
  readonly x: Tensor;
  readonly cos: Tensor;
  readonly sin: Tensor;
  /** (batch·T) i32 next-token targets, −1 ignored. */
  readonly targets: Tensor;
  /** (batch·T) token weights. */
  readonly weights: Tensor;
}

/** Weighted CE loss of the stack. `base`, `lora`: tensors in blockParams order. */
export function blockLoss(
  c: BlockConfig,
  base: readonly Tensor[],
  lora: readonly Tensor[],
  inp: BlockInputs,
): Tensor {
  const { logits } = blockForward(c, base, lora, inp.x, inp.cos, inp.sin);
  return scale(weightedCrossEntropy(logits, inp.targets, inp.weights), 1 / (c.batch * c.T));
}

/** Final-norm hidden states (B·T, C) and logits (B·T, V) of the stack for inputs x (B·T, C). */
export function blockForward(
  c: BlockConfig,
  base: readonly Tensor[],
  lora: readonly Tensor[],
  x: Tensor,
  cos: Tensor,
  sin: Tensor,
): { hidden: Tensor; logits: Tensor } {
  const inp = { x, cos, sin };
  const hd = c.dim / c.heads, BT = c.batch * c.T;
  let bi = 0, li = 0;
  const nextBase = () => base[bi++];
  const lin = (x: Tensor, W: Tensor) => {
    const A = lora[li++], B = lora[li++];
    return loraLinear(x, W, undefined, { A, B, scale: c.loraScale });
  };
  const heads = (t: Tensor, h: number) => permute(reshape(t, [c.batch, c.T, h, hd]), [0, 2, 1, 3]);
  let h = inp.x; // (B·T, C)
  for (let l = 0; l < c.layers; l++) {
    const n1 = nextBase(), n2 = nextBase();
    const [Wq, Wk, Wv, Wo, Wg, Wu, Wd] = LINEARS.map(() => nextBase());
    const a = rmsNorm(h, n1, 1e-5);
    const q = rope(heads(lin(a, Wq), c.heads), inp.cos, inp.sin); // (B, H, T, hd)
    const k = rope(heads(lin(a, Wk), c.kvHeads), inp.cos, inp.sin); // (B, Hkv, T, hd)
    const v = heads(lin(a, Wv), c.kvHeads);
    const att = attention(q, k, v, { causal: true }); // (B, H, T, hd)
    const merged = reshape(permute(att, [0, 2, 1, 3]), [BT, c.heads * hd]);
    h = add(h, lin(merged, Wo));
    const m = rmsNorm(h, n2, 1e-5);
    const gated = mul(silu(lin(m, Wg)), lin(m, Wu));
    h = add(h, lin(gated, Wd));
  }
  const nf = nextBase(), head = nextBase();
  const hidden = rmsNorm(h, nf, 1e-5);
  return { hidden, logits: matmul(hidden, head) }; // (B·T, C), (B·T, V)
}

/** Seeded tensors for a config (inputs and weights); everything in the current scope. */
export function randomBlock(
  rt: Runtime,
  c: BlockConfig,
  seed: number,
  rand: (n: number, s: number, lo: number, hi: number) => Float32Array,
) {
  const { base, lora } = blockParams(c);
  let s = seed;
  const b = base.map(([name, shape]) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const isNorm = name.includes("norm");
    const bound = isNorm ? 0 : 1 / Math.sqrt(shape[0]);
    return rt.tensor(
      isNorm ? rand(n, s++, 0.8, 1.2) : rand(n, s++, -bound * 1.7, bound * 1.7),
      shape,
    );
  });
  const lo = lora.map(([_, shape]) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const bound = 1 / Math.sqrt(shape[0]);
    return rt.tensor(rand(n, s++, -bound, bound), shape);
  });
  return { base: b, lora: lo, names: { base, lora } };
}
