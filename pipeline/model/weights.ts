/**
 * The canonical weight layout (pipeline/model/README.md): a Map from our names to
 * {shape, data: Float32Array}, every linear stored as (in, out) so y = x·W (+ b). Loaders
 * (hf_loader.ts, llama2c.ts) convert into it; the float64 reference and the GPU forward read
 * only it. `expectedShapes` is the single source of truth for names and shapes.
 */
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { mulberry32 } from "../data/rng.ts";

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export type Weights = Map<string, Tensor>;

export interface Model {
  readonly config: ModelConfig;
  readonly weights: Weights;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new ModelError(`tensor of shape [${shape}] needs ${n} values, got ${data.length}`);
  }
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}

/** Linear modules of one layer, in the order LoRA and exports list them. */
export function layerLinears(c: ModelConfig): string[] {
  return c.act === "silu" ? ["q", "k", "v", "o", "gate", "up", "down"] : [
    "q",
    "k",
    "v",
    "o",
    "fc",
    "proj",
  ];
}

/** (in, out) of linear `name` ("q", "down", …) of every layer. */
export function linearShape(c: ModelConfig, name: string): [number, number] {
  const q = c.heads * c.headDim, kv = c.kvHeads * c.headDim;
  switch (name) {
    case "q":
      return [c.dim, q];
    case "k":
    case "v":
      return [c.dim, kv];
    case "o":
      return [q, c.dim];
    case "gate":
    case "up":
    case "fc":
      return [c.dim, c.hidden];
    case "down":
    case "proj":
      return [c.hidden, c.dim];
  }
  throw new ModelError(`no linear "${name}" in a ${c.arch} layer; use ${layerLinears(c)}`);
}

function hasBias(c: ModelConfig, linear: string): boolean {
  if (linear === "q" || linear === "k" || linear === "v") return c.qkvBias;
  if (linear === "o") return c.oBias;
  return c.mlpBias;
}

/** Every tensor name of a config with its shape, in a stable order. */
export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set("embed", [c.vocab, c.dim]);
  if (c.positions === "learned") m.set("pos", [c.maxPositions, c.dim]);
  const norm = (prefix: string) => {
    m.set(`${prefix}.weight`, [c.dim]);
    if (c.norm === "layernorm") m.set(`${prefix}.bias`, [c.dim]);
  };
  for (let i = 0; i < c.layers; i++) {
    norm(`layers.${i}.norm1`);
    for (const l of layerLinears(c)) {
      // norm2 sits between attention and MLP.
      if (l === "gate" || l === "fc") norm(`layers.${i}.norm2`);
      const [inn, out] = linearShape(c, l);
      m.set(`layers.${i}.${l}.weight`, [inn, out]);
      if (hasBias(c, l)) m.set(`layers.${i}.${l}.bias`, [out]);
    }
  }
  norm("norm_f");
  if (!c.tiedEmbeddings) m.set("lm_head.weight", [c.dim, c.vocab]);
  return m;
}

/** Throws naming the first missing, extra or mis-shaped tensor (and the expected shape). */
export function validateWeights(c: ModelConfig, w: Weights, where: string): void {
  const want = expectedShapes(c);
  for (const [name, shape] of want) {
    const t = w.get(name);
    if (!t) {
      throw new ModelError(`${where}: tensor "${name}" is missing; expected shape [${shape}]`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(
        `${where}: tensor "${name}" has shape [${t.shape}]; expected [${shape}]`,
      );
    }
    if (t.data.length !== numel(shape)) {
      throw new ModelError(`${where}: tensor "${name}" holds ${t.data.length} values ≠ [${shape}]`);
    }
  }
  for (const name of w.keys()) {
    if (!want.has(name)) {
      throw new ModelError(
        `${where}: unexpected tensor "${name}" for this ${c.arch} config (check layers, ` +
          `tie_word_embeddings and biases in the config)`,
      );
    }
  }
}

/** Seeded normal sampler (mulberry32 + Box–Muller): weights are reproducible anywhere. */
export function normalSampler(seed: number): () => number {
  const u = mulberry32(seed);
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/**
 * Random weights for a config: matrices N(0, std²); norms 1 and biases 0, or, with
 * `perturbAll` (tests), norms 1 + N(0, std²) and biases N(0, std²) so every tensor matters.
 */
export function initRandomWeights(
  c: ModelConfig,
  seed: number,
  { std = 0.02, perturbAll = false } = {},
): Weights {
  const g = normalSampler(seed);
  const w: Weights = new Map();
  for (const [name, shape] of expectedShapes(c)) {
    const t = tensor(shape);
    const isNorm = /norm/.test(name) && name.endsWith(".weight");
    const isBias = name.endsWith(".bias");
    for (let i = 0; i < t.data.length; i++) {
      if (isNorm) t.data[i] = 1 + (perturbAll ? std * g() : 0);
      else if (isBias) t.data[i] = perturbAll ? std * g() : 0;
      else t.data[i] = std * g();
    }
    w.set(name, t);
  }
  return w;
}

/** (rows, cols) row-major → (cols, rows): HF nn.Linear (out, in) ↔ our (in, out). */
export function transpose2d(data: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  }
  return out;
}
