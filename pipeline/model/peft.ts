/**
 * PEFT's LoRA adapter format, so a PyTorch user can load our adapters
 * (PeftModel.from_pretrained(base, dir)) and we can load theirs: `adapter_config.json` +
 * `adapter_model.safetensors` with tensors
 *   base_model.model.{HF module path}.lora_A.weight  (r, in)   = our Aᵀ
 *   base_model.model.{HF module path}.lora_B.weight  (out, r)  = our Bᵀ
 * GPT-2: LoRA sits on the fused c_attn (our "qkv"), as PEFT does; fan_in_fan_out = true
 * (Conv1D) changes only how PEFT merges, not the lora_A/lora_B shapes. When GPT-2 targets only
 * one of attn.c_proj / mlp.c_proj, PEFT's leaf-name list cannot say which, so target_modules
 * is written as a full-match regex (PEFT's string form) naming the exact module paths.
 */
import { writeFileAtomic } from "./atomic.ts";
import type { ModelConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { readJsonFile } from "./hf_loader.ts";
import { hfLinearPath } from "./hf_names.ts";
import {
  type LoraConfig,
  loraLayout,
  loraModules,
  type LoraParams,
  loraScale,
  resolveTargets,
} from "./lora.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";
import { type Tensor, transpose2d } from "./weights.ts";

const PREFIX = "base_model.model.";

/** HF leaf name of one of our modules. */
function leaf(c: ModelConfig, module: string): string {
  return hfLinearPath(c, 0, module).split(".").pop()!;
}

function peftName(c: ModelConfig, layer: number, module: string, kind: "A" | "B"): string {
  return `${PREFIX}${hfLinearPath(c, layer, module)}.lora_${kind}.weight`;
}

/** adapter_config.json contents for an adapter on `c`. */
export function peftConfig(c: ModelConfig, p: LoraParams, baseModel = ""): Record<string, unknown> {
  const { modules, layers } = resolveTargets(c, p.config);
  const leaves = [...new Set(modules.map((m) => leaf(c, m)))];
  // A leaf list is ambiguous when a leaf (GPT-2's c_proj) covers a module we do not target.
  const ambiguous = loraModules(c).some((m) => !modules.includes(m) && leaves.includes(leaf(c, m)));
  const allLayers = layers.length === c.layers;
  const cfg: Record<string, unknown> = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: p.config.rank,
    lora_alpha: p.config.alpha,
    lora_dropout: p.config.dropout,
    use_rslora: p.config.rsLora,
    fan_in_fan_out: c.arch === "gpt2",
    bias: "none",
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    revision: null,
  };
  if (ambiguous) {
    const esc = (s: string) => s.replaceAll(".", "\\.");
    const paths = modules.map((m) => esc(hfLinearPath(c, 0, m).split(".").slice(-2).join(".")));
    const block = c.arch === "gpt2" ? "transformer\\.h" : "model\\.layers";
    cfg.target_modules = `^${block}\\.(${layers.join("|")})\\.(${paths.join("|")})$`;
    cfg.layers_to_transform = null;
    cfg.layers_pattern = null;
  } else {
    cfg.target_modules = leaves;
    cfg.layers_to_transform = allLayers ? null : layers;
    cfg.layers_pattern = allLayers ? null : c.arch === "gpt2" ? "h" : "layers";
  }
  return cfg;
}

/** Write adapter_config.json + adapter_model.safetensors into `dir` (atomic files). */
export function exportPeft(
  dir: string,
  c: ModelConfig,
  p: LoraParams,
  { baseModel = "" } = {},
): void {
  const tensors: [string, Tensor][] = [];
  for (const s of p.specs) {
    const [rows, cols] = s.shape;
    tensors.push([peftName(c, s.layer, s.module, s.kind), {
      shape: [cols, rows],
      data: transpose2d(p.data.subarray(s.offset, s.offset + s.size), rows, cols),
    }]);
  }
  Deno.mkdirSync(dir, { recursive: true });
  writeSafetensors(`${dir}/adapter_model.safetensors`, tensors, { metadata: { format: "pt" } });
  writeFileAtomic(
    `${dir}/adapter_config.json`,
    JSON.stringify(peftConfig(c, p, baseModel), null, 2) + "\n",
  );
}

/**
 * Load a PEFT LoRA adapter for model `c`. The scaling comes from adapter_config.json; which
 * modules and layers carry LoRA comes from the tensors themselves (every targeted layer must
 * carry the same modules, and the layers must be the last k, as our layout supports).
 */
export function importPeft(dir: string, c: ModelConfig): LoraParams {
  const cfgPath = `${dir}/adapter_config.json`, wPath = `${dir}/adapter_model.safetensors`;
  const j = readJsonFile(cfgPath);
  if (j.peft_type !== "LORA") {
    throw new ModelError(
      `${cfgPath}: peft_type ${JSON.stringify(j.peft_type)} is not supported; only LORA`,
    );
  }
  const num = (k: string, fallback?: number): number => {
    const v = j[k] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new ModelError(`${cfgPath}: "${k}" must be a number`);
    }
    return v;
  };
  for (const k of ["rank_pattern", "alpha_pattern"]) {
    const v = j[k];
    if (v && typeof v === "object" && Object.keys(v).length) {
      throw new ModelError(
        `${cfgPath}: "${k}" (per-module ranks/alphas) is not supported; use one r and lora_alpha`,
      );
    }
  }
  if (j.use_dora) throw new ModelError(`${cfgPath}: DoRA adapters (use_dora) are not supported`);
  const rank = num("r"), alpha = num("lora_alpha", 8);
  const known = new Map<string, { layer: number; module: string; kind: "A" | "B" }>();
  for (let layer = 0; layer < c.layers; layer++) {
    for (const module of loraModules(c)) {
      for (const kind of ["A", "B"] as const) {
        known.set(peftName(c, layer, module, kind), { layer, module, kind });
      }
    }
  }
  const raw = readSafetensors(wPath);
  const byLayer = new Map<number, Set<string>>();
  for (const name of raw.keys()) {
    const k = known.get(name);
    if (!k) {
      throw new ModelError(
        `${wPath}: tensor "${name}" is not a LoRA A/B of this ${c.arch} model's linears ` +
          `(expected names like "${peftName(c, 0, loraModules(c)[0], "A")}")`,
      );
    }
    if (!byLayer.has(k.layer)) byLayer.set(k.layer, new Set());
    byLayer.get(k.layer)!.add(k.module);
  }
  if (!byLayer.size) throw new ModelError(`${wPath}: no LoRA tensors`);
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  const modules = loraModules(c).filter((m) => byLayer.get(layers[0])!.has(m));
  for (const l of layers) {
    const got = loraModules(c).filter((m) => byLayer.get(l)!.has(m));
    if (got.join() !== modules.join()) {
      throw new ModelError(
        `${wPath}: layer ${l} has LoRA on ${got} but layer ${
          layers[0]
        } on ${modules}; uneven adapters are not supported`,
      );
    }
  }
  const k = layers.length;
  if (layers[0] !== c.layers - k || layers[k - 1] !== c.layers - 1) {
    throw new ModelError(
      `${wPath}: LoRA on layers ${layers}; only all layers or the last k are supported`,
    );
  }
  const config: LoraConfig = {
    rank,
    alpha,
    rsLora: j.use_rslora === true,
    dropout: num("lora_dropout", 0),
    targetModules: modules,
    topKLayers: k === c.layers ? undefined : k,
    seed: 0,
  };
  const { specs, size } = loraLayout(c, config);
  const data = new Float32Array(size);
  for (const s of specs) {
    const name = peftName(c, s.layer, s.module, s.kind);
    const t = raw.get(name);
    const [rows, cols] = s.shape; // ours; PEFT stores (cols, rows)
    if (!t) {
      throw new ModelError(
        `${wPath}: tensor "${name}" is missing; expected shape [${cols},${rows}]`,
      );
    }
    if (t.shape.length !== 2 || t.shape[0] !== cols || t.shape[1] !== rows) {
      throw new ModelError(
        `${wPath}: tensor "${name}" has shape [${t.shape}]; expected [${cols},${rows}] (r = ${rank})`,
      );
    }
    data.set(transpose2d(t.data, cols, rows), s.offset);
  }
  return { config, scale: loraScale(config), specs, data };
}
