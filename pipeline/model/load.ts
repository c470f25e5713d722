/**
 * One entry point for "a model path": a Hugging Face directory (config.json + safetensors) or
 * a llama2.c `.bin`, with the tokenizer that goes with it.
 */
import { loadHfTokenizer } from "../tokenizer/hf.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { CompactTokenizer, CompactVocab } from "../tokenizer/compact_vocab.ts";
import { ModelError } from "./errors.ts";
import { loadHfModel, readJsonFile } from "./hf_loader.ts";
import { type ModelConfig, parseHfConfig } from "./config.ts";
import { SafetensorsReader } from "./safetensors.ts";
import { hfEntries, ignorableHfTensor } from "./hf_names.ts";
import { readLlama2c } from "./llama2c.ts";
import { Llama2cTokenizer, readLlama2cTokenizer } from "./llama2c_tokenizer.ts";
import type { Model } from "./weights.ts";

function stat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

export function isLlama2cPath(path: string): boolean {
  return stat(path)?.isFile === true && path.endsWith(".bin");
}

/** A HF model directory or a llama2.c `.bin` checkpoint. */
export function loadModel(path: string): Model {
  const s = stat(path);
  if (!s) throw new ModelError(`model ${path}: does not exist`);
  if (s.isDirectory) return loadHfModel(path);
  if (path.endsWith(".bin")) return readLlama2c(path);
  throw new ModelError(
    `model ${path}: use a Hugging Face model directory (config.json + model.safetensors) or ` +
      `a llama2.c .bin checkpoint`,
  );
}

/** The llama2.c tokenizer beside a checkpoint: tok{vocab}.bin, tokenizer.bin, or the one tok*.bin. */
function llama2cTokenizerBeside(modelPath: string, vocab: number): string {
  const dir = modelPath.includes("/") ? modelPath.slice(0, modelPath.lastIndexOf("/")) : ".";
  for (const name of [`tok${vocab}.bin`, "tokenizer.bin"]) {
    if (stat(`${dir}/${name}`)?.isFile) return `${dir}/${name}`;
  }
  const toks = [...Deno.readDirSync(dir)].filter((e) => e.isFile && /^tok.*\.bin$/.test(e.name));
  if (toks.length === 1) return `${dir}/${toks[0].name}`;
  throw new ModelError(
    `model ${modelPath}: no llama2.c tokenizer beside it (looked for tok${vocab}.bin, ` +
      `tokenizer.bin${toks.length ? `; several tok*.bin: ${toks.map((e) => e.name)}` : ""}); ` +
      `pass --tokenizer PATH`,
  );
}

/**
 * The tokenizer for a model: `tokenizerPath` if given (a llama2.c tokenizer .bin, a
 * compact_vocab.json, or a directory with tokenizer.json or compact_vocab.json), else what
 * sits with the model. Its vocabulary must fit the model's.
 */
export function loadTokenizerFor(
  modelPath: string,
  model: Model,
  tokenizerPath?: string,
): TextTokenizer {
  const vocab = model.config.vocab;
  const fromPath = (p: string): TextTokenizer => {
    const s = stat(p);
    if (!s) throw new ModelError(`tokenizer ${p}: does not exist`);
    if (s.isFile && p.endsWith(".bin")) return readLlama2cTokenizer(p, vocab);
    if (s.isFile && p.endsWith(".json")) {
      return new CompactTokenizer(CompactVocab.fromJson(Deno.readTextFileSync(p), p));
    }
    if (s.isDirectory && stat(`${p}/compact_vocab.json`)) {
      return fromPath(`${p}/compact_vocab.json`);
    }
    if (s.isDirectory && stat(`${p}/tokenizer.json`)) return loadHfTokenizer(p);
    throw new ModelError(
      `tokenizer ${p}: use a llama2.c tokenizer .bin, a compact_vocab.json, or a directory ` +
        `with tokenizer.json`,
    );
  };
  const tok = tokenizerPath
    ? fromPath(tokenizerPath)
    : isLlama2cPath(modelPath)
    ? readLlama2cTokenizer(llama2cTokenizerBeside(modelPath, vocab), vocab)
    : fromPath(modelPath);
  if (tok.vocabSize > vocab) {
    throw new ModelError(
      `tokenizer ${tokenizerPath ?? modelPath}: ${tok.vocabSize} tokens but the model's ` +
        `vocabulary has ${vocab}; use the model's own tokenizer`,
    );
  }
  return tok;
}

/**
 * Prompt ids as the model was trained to see them: llama2.c and LLaMA models start with BOS
 * (run.c / HF's LLaMA tokenizers add it); GPT-2, Qwen2 and the compact tiny model do not. An
 * empty prompt becomes [BOS or EOS] so there is something to condition on.
 */
export function promptIds(model: Model, tok: TextTokenizer, text: string): number[] {
  const c = model.config;
  const llamaBos = tok instanceof Llama2cTokenizer ||
    (c.arch === "llama" && !(tok instanceof CompactTokenizer) && c.bosId !== undefined);
  const ids = tok.encode(text);
  if (llamaBos) return [c.bosId ?? tok.bosId!, ...ids];
  if (!ids.length) return [c.bosId ?? c.eosIds[0] ?? tok.eosId];
  return ids;
}

/**
 * What `--dry-run` checks of a model path without reading weights: the config parses, a
 * tokenizer sits with it, and the weight files' headers parse (tensor names and shapes).
 * Returns the config; throws a ModelError naming the file and the fix.
 */
export function inspectModel(path: string): ModelConfig {
  const s = stat(path);
  if (!s) throw new ModelError(`model ${path}: does not exist`);
  if (!s.isDirectory) {
    if (!path.endsWith(".bin")) {
      throw new ModelError(
        `model ${path}: use a Hugging Face model directory (config.json + model.safetensors) ` +
          "or a llama2.c .bin checkpoint",
      );
    }
    return readLlama2c(path).config;
  }
  const where = `${path}/config.json`;
  const config = parseHfConfig(readJsonFile(where), where);
  if (!stat(`${path}/tokenizer.json`) && !stat(`${path}/compact_vocab.json`)) {
    throw new ModelError(
      `model ${path}: no tokenizer.json (or compact_vocab.json) in the folder; copy the model's ` +
        "tokenizer there",
    );
  }
  const index = `${path}/model.safetensors.index.json`;
  const files: string[] = [];
  if (stat(index)) {
    const map = (readJsonFile(index).weight_map ?? {}) as Record<string, string>;
    files.push(...new Set(Object.values(map)));
  } else if (stat(`${path}/model.safetensors`)) {
    files.push("model.safetensors");
  } else {
    throw new ModelError(
      `model ${path}: no model.safetensors (or model.safetensors.index.json with its shards)`,
    );
  }
  // Tensor names and shapes against the config (headers only), as the loader will check them.
  const shapes = new Map<string, readonly number[]>();
  for (const f of files) {
    const r = new SafetensorsReader(`${path}/${f}`);
    for (const [n, e] of r.header.entries) {
      shapes.set(config.arch === "gpt2" ? n.replace(/^transformer\./, "") : n, e.shape);
    }
    r.close();
  }
  const at = `model ${path} (safetensors)`;
  const used = new Set<string>();
  for (const e of hfEntries(config)) {
    const s = shapes.get(e.hf);
    if (!s) {
      throw new ModelError(`${at}: tensor "${e.hf}" is missing; expected shape [${e.shape}]`);
    }
    if (s.length !== e.shape.length || s.some((d, i) => d !== e.shape[i])) {
      throw new ModelError(`${at}: tensor "${e.hf}" has shape [${s}]; expected [${e.shape}]`);
    }
    used.add(e.hf);
  }
  for (const n of shapes.keys()) {
    if (!used.has(n) && !ignorableHfTensor(config, n)) {
      throw new ModelError(
        `${at}: unexpected tensor "${n}" for this ${config.arch} config (check layers, ` +
          "tie_word_embeddings and biases in config.json)",
      );
    }
  }
  return config;
}
