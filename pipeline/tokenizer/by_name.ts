/** Pick a tokenizer by config name or model directory. */
import { gpt2Tokenizer } from "./gpt2.ts";
import { loadHfTokenizer, qwen3Tokenizer } from "./hf.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** "gpt2", "qwen3", or a path to a directory with tokenizer.json. */
export function tokenizerByName(name: string): TextTokenizer {
  if (name === "gpt2") return gpt2Tokenizer();
  if (name === "qwen3" || name === "qwen2") return qwen3Tokenizer();
  try {
    Deno.statSync(`${name}/tokenizer.json`);
  } catch {
    throw new Error(
      `tokenizer "${name}": not "gpt2", "qwen3", or a directory containing tokenizer.json`,
    );
  }
  return loadHfTokenizer(name);
}
