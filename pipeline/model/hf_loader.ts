/**
 * Hugging Face model directories ↔ {config, weights}: config.json + model.safetensors (or a
 * sharded model.safetensors.index.json). Loading validates every tensor against the config;
 * saving writes the same layout a PyTorch user loads with from_pretrained.
 */
import { writeFileAtomic } from "./atomic.ts";
import { parseHfConfig, toHfConfig } from "./config.ts";
import { ModelError } from "./errors.ts";
import { canonicalToHf, hfToCanonical } from "./hf_names.ts";
import { type DType, readSafetensorsDir, writeSafetensors } from "./safetensors.ts";
import { type Model, validateWeights } from "./weights.ts";

export function readJsonFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ModelError(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    const v = JSON.parse(text);
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v;
  } catch (e) {
    throw new ModelError(`${path}: not a valid JSON object (${(e as Error).message})`);
  }
}

/** Load a HF model directory into the canonical layout. */
export function loadHfModel(dir: string): Model {
  const where = `${dir}/config.json`;
  const config = parseHfConfig(readJsonFile(where), where);
  const raw = readSafetensorsDir(dir);
  // GPT2LMHeadModel saves "transformer.h.0…"; a bare GPT2Model saves "h.0…": accept both.
  const hf = config.arch === "gpt2"
    ? new Map([...raw].map(([n, t]) => [n.replace(/^transformer\./, ""), t]))
    : raw;
  const weights = hfToCanonical(config, hf, `${dir} (safetensors)`);
  validateWeights(config, weights, dir);
  return { config, weights };
}

/** Write config.json + model.safetensors (atomic files; the directory is created). */
export function saveHfModel(dir: string, model: Model, { dtype = "F32" as DType } = {}): void {
  validateWeights(model.config, model.weights, "saveHfModel");
  Deno.mkdirSync(dir, { recursive: true });
  writeSafetensors(`${dir}/model.safetensors`, canonicalToHf(model.config, model.weights), {
    dtype,
    metadata: { format: "pt" },
  });
  writeFileAtomic(`${dir}/config.json`, JSON.stringify(toHfConfig(model.config), null, 2) + "\n");
}
