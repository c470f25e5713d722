/**
 * A toy PerkLM for tests: embedding lookup + the core's example LoRA decoder stack
 * (tests/example_block.ts), with random frozen weights, and random tokenised
 * problems. Small enough to finite-difference the whole PERK outer loss on the GPU.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { type BlockConfig, blockForward, randomBlock } from "./example_block.ts";
import { crossEntropyRows, gather, RowIndex } from "../kernels/autodiff/nn.ts";
import { ropeTables } from "../kernels/ops/nn_kernels.ts";
import type { PerkLM } from "../pipeline/perk/objectives.ts";
import type { EncodedProblem, TokenBatch } from "../pipeline/perk/batch.ts";
import { randn, rng } from "./testing.ts";

export const TOY: BlockConfig = {
  batch: 1,
  T: 1,
  dim: 16,
  heads: 2,
  kvHeads: 1,
  hidden: 20,
  vocab: 13,
  layers: 1,
  rank: 2,
  loraScale: 1,
};

export function toyLM(rt: Runtime, seed = 5): PerkLM & { lora: Tensor[]; dispose(): void } {
  const r = rt.scope(() => {
    const b = randomBlock(rt, TOY, seed, randn);
    const embed = rt.tensor(randn(TOY.vocab * TOY.dim, seed + 77), [TOY.vocab, TOY.dim]);
    return {
      base: b.base.map((t) => rt.keep(t)),
      lora: b.lora.map((t) => rt.keep(t)),
      embed: rt.keep(embed),
    };
  });
  const hd = TOY.dim / TOY.heads;
  const tables = new Map<number, { cos: Tensor; sin: Tensor }>();
  const table = (T: number) => {
    let t = tables.get(T);
    if (!t) {
      const h = ropeTables(T, hd, 10000);
      t = {
        cos: rt.keep(rt.tensor(h.cos, [T, hd / 2])),
        sin: rt.keep(rt.tensor(h.sin, [T, hd / 2])),
      };
      tables.set(T, t);
    }
    return t;
  };
  // The base alone: the decoder with every LoRA B at zero (its update vanishes).
  const noAdapter = r.lora.map((t) => rt.keep(rt.zeros(t.shape)));
  const forward = (b: TokenBatch, lora: readonly Tensor[]) => {
    const idx = new RowIndex(rt, b.ids, TOY.vocab);
    const x = gather(r.embed, idx);
    const { cos, sin } = table(b.len);
    const out = blockForward({ ...TOY, batch: b.rows, T: b.len }, r.base, lora, x, cos, sin);
    idx.ids.dispose(); // gather keeps no reference once the kernel is recorded
    return out;
  };
  return {
    rt,
    dim: TOY.dim,
    lora: r.lora,
    nll: (b: TokenBatch, targets: Tensor, lora: readonly Tensor[]) => {
      const { hidden, logits } = forward(b, lora);
      return { hidden, nll: crossEntropyRows(logits, targets) };
    },
    baseHidden: (b: TokenBatch) => forward(b, noAdapter).hidden,
    dispose() {
      [...r.base, ...r.lora, r.embed, ...noAdapter].forEach((t) => t.dispose());
      tables.forEach((t) => [t.cos, t.sin].forEach((x) => x.dispose()));
    },
  };
}

/** A random problem: `segs` segments ("prefix" of 2 tokens), a prompt and a target. */
export function toyProblem(seed: number, segs = 3): EncodedProblem {
  const r = rng(seed);
  const tok = () => 1 + Math.floor(r() * (TOY.vocab - 1));
  const seq = (n: number) => Int32Array.from({ length: n }, tok);
  const segments = Array.from({ length: segs }, (_, i) => seq(5 + ((i * 2 + seed) % 3)));
  return {
    segments,
    prefixLengths: segments.map(() => 2),
    prompt: seq(4),
    target: seq(3),
  };
}
