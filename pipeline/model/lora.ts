/**
 * LoRA adapters as one flat parameter set: an ordered list of {name, shape, offset} over a
 * single Float32Array, so an inner loop can update all adapter parameters functionally
 * (new array in, new array out; the base weights are never touched).
 *
 * Per targeted linear y = x·W: A (in, r), B (r, out), y += scale·(x·A)·B with scale =
 * alpha/√r (rank-stabilised, PERK's default) or alpha/r. GPT-2's modules are qkv (the fused
 * c_attn, B (r, 3C) → q | k | v), o (attn.c_proj), fc, proj (mlp.c_proj), exactly PEFT's
 * c_attn/c_proj/c_fc; LLaMA/Qwen2's are q, k, v, o, gate, up, down. Init as PEFT: A
 * Kaiming-uniform (kaiming_uniform_(a=√5) → U(±1/√in)), B = 0, seeded.
 */
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { mulberry32 } from "../data/rng.ts";
import type { ReferenceLora } from "./reference.ts";
import { linearShape, type Tensor } from "./weights.ts";

export interface LoraConfig {
  readonly rank: number;
  readonly alpha: number;
  /** Rank-stabilised scaling alpha/√r (true) or alpha/r (false). */
  readonly rsLora: boolean;
  /** Dropout on the LoRA input during training (not applied by the float64 reference). */
  readonly dropout: number;
  /** Modules per layer (ours, e.g. "q", "qkv", or HF leaf names like "q_proj", "c_attn"). */
  readonly targetModules: readonly string[];
  /** Only the last k layers carry LoRA (PERK: top 4 on 7B/8B); undefined = all layers. */
  readonly topKLayers?: number;
  /** Seed of A's Kaiming-uniform init. */
  readonly seed: number;
}

/** Every LoRA module of one layer, in parameter order. */
export function loraModules(c: ModelConfig): string[] {
  return c.arch === "gpt2"
    ? ["qkv", "o", "fc", "proj"]
    : ["q", "k", "v", "o", "gate", "up", "down"];
}

/** (in, out) of a LoRA module. */
export function loraModuleShape(c: ModelConfig, module: string): [number, number] {
  if (module === "qkv") return [c.dim, (c.heads + 2 * c.kvHeads) * c.headDim];
  return linearShape(c, module);
}

/** HF leaf names → ours (c_proj is both GPT-2 projections, as PEFT's suffix match). */
const HF_LEAF: Record<string, string[]> = {
  q_proj: ["q"],
  k_proj: ["k"],
  v_proj: ["v"],
  o_proj: ["o"],
  gate_proj: ["gate"],
  up_proj: ["up"],
  down_proj: ["down"],
  c_attn: ["qkv"],
  c_fc: ["fc"],
  c_proj: ["o", "proj"],
};

/** PERK's settings except the rank (paper: 256; ablation and small models: 16). */
export function defaultLoraConfig(c: ModelConfig, over: Partial<LoraConfig> = {}): LoraConfig {
  return {
    rank: 16,
    alpha: 16,
    rsLora: true,
    dropout: 0.1,
    targetModules: loraModules(c),
    seed: 0,
    ...over,
  };
}

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly [number, number];
  readonly offset: number;
  readonly size: number;
  readonly layer: number;
  readonly module: string;
  readonly kind: "A" | "B";
}

/** A LoRA adapter: the config, the layout and the values (one Float32Array). */
export interface LoraParams {
  readonly config: LoraConfig;
  readonly scale: number;
  readonly specs: readonly ParamSpec[];
  readonly data: Float32Array;
}

export function loraScale(l: LoraConfig): number {
  return l.rsLora ? l.alpha / Math.sqrt(l.rank) : l.alpha / l.rank;
}

/** Check a LoRA config against a model; returns the target modules (ours, in layer order). */
export function resolveTargets(
  c: ModelConfig,
  l: LoraConfig,
): { modules: string[]; layers: number[] } {
  const where = "LoRA config";
  if (!Number.isInteger(l.rank) || l.rank <= 0) {
    throw new ModelError(`${where}: rank must be a positive integer, got ${l.rank}`);
  }
  if (!(l.alpha > 0)) throw new ModelError(`${where}: alpha must be > 0, got ${l.alpha}`);
  if (!(l.dropout >= 0 && l.dropout < 1)) {
    throw new ModelError(`${where}: dropout must be in [0, 1), got ${l.dropout}`);
  }
  const all = loraModules(c), want = new Set<string>();
  for (const m of l.targetModules) {
    const ours = all.includes(m) ? [m] : HF_LEAF[m]?.filter((x) => all.includes(x));
    if (!ours?.length) {
      throw new ModelError(
        `${where}: target module "${m}" is not a ${c.arch} linear; use ${all.join(", ")} ` +
          `(or HF names ${
            Object.keys(HF_LEAF).filter((k) => HF_LEAF[k].some((x) => all.includes(x))).join(", ")
          })`,
      );
    }
    ours.forEach((x) => want.add(x));
  }
  if (!want.size) throw new ModelError(`${where}: targetModules is empty`);
  const k = l.topKLayers ?? c.layers;
  if (!Number.isInteger(k) || k <= 0 || k > c.layers) {
    throw new ModelError(`${where}: topKLayers must be 1..${c.layers}, got ${l.topKLayers}`);
  }
  return {
    modules: all.filter((m) => want.has(m)),
    layers: Array.from({ length: k }, (_, i) => c.layers - k + i),
  };
}

/** The flat layout: per targeted layer (ascending), per module, A then B. */
export function loraLayout(c: ModelConfig, l: LoraConfig): { specs: ParamSpec[]; size: number } {
  const { modules, layers } = resolveTargets(c, l);
  const specs: ParamSpec[] = [];
  let offset = 0;
  for (const layer of layers) {
    for (const module of modules) {
      const [inn, out] = loraModuleShape(c, module);
      for (const [kind, shape] of [["A", [inn, l.rank]], ["B", [l.rank, out]]] as const) {
        const size = shape[0] * shape[1];
        specs.push({
          name: `layers.${layer}.${module}.lora_${kind}`,
          shape,
          offset,
          size,
          layer,
          module,
          kind,
        });
        offset += size;
      }
    }
  }
  return { specs, size: offset };
}

/** A fresh adapter: A ~ U(−1/√in, 1/√in) (PEFT's Kaiming-uniform with a=√5), B = 0. */
export function initLora(c: ModelConfig, l: LoraConfig): LoraParams {
  const { specs, size } = loraLayout(c, l);
  // A is drawn from the seeded mulberry32 stream (pipeline/data/rng.ts).
  const data = new Float32Array(size), u = mulberry32(l.seed);
  for (const s of specs) {
    if (s.kind !== "A") continue;
    const bound = 1 / Math.sqrt(s.shape[0]); // fan_in = in
    for (let i = 0; i < s.size; i++) data[s.offset + i] = (2 * u() - 1) * bound;
  }
  return { config: l, scale: loraScale(l), specs, data };
}

/** The same adapter with new values (functional update; layout shared). */
export function withData(p: LoraParams, data: Float32Array): LoraParams {
  if (data.length !== p.data.length) {
    throw new ModelError(`LoRA: ${data.length} values for a layout of ${p.data.length}`);
  }
  return { ...p, data };
}

/** The values of one named tensor (a view into p.data). */
export function loraView(p: LoraParams, name: string): Float32Array {
  const s = p.specs.find((x) => x.name === name);
  if (!s) throw new ModelError(`LoRA: no parameter "${name}"`);
  return p.data.subarray(s.offset, s.offset + s.size);
}

/** Named tensor views (no copies) for the reference forward. */
export function loraTensors(p: LoraParams): Map<string, Tensor> {
  return new Map(
    p.specs.map((
      s,
    ) => [s.name, { shape: s.shape, data: p.data.subarray(s.offset, s.offset + s.size) }]),
  );
}

export function toReferenceLora(p: LoraParams): ReferenceLora {
  return { scale: p.scale, tensors: loraTensors(p) };
}
