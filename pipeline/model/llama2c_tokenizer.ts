/**
 * llama2.c's tokenizer.bin format (e.g. tok512.bin): int32 max_token_length, then per token
 * float32 score, int32 length, bytes. Encoding is run.c's SentencePiece-style BPE: a dummy
 * " " prefix, one token per UTF-8 character (byte tokens <0xXX> = id byte+3 as fallback),
 * then repeatedly merge the adjacent pair whose concatenation is in the vocabulary with the
 * highest score. Decoding drops the space after BOS (and at the start) and maps <0xXX> pieces
 * to bytes, as run.c's decode does.
 */
import { ModelError } from "./errors.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** Pieces are kept as "binary strings" (one char per byte) so lookups compare bytes. */
function latin1(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

export class Llama2cTokenizer implements TextTokenizer {
  readonly name: string;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly vocabSize: number;
  readonly maxTokenLength: number;
  private readonly lookup = new Map<string, number>();

  constructor(
    readonly pieces: string[],
    readonly scores: Float32Array,
    maxTokenLength: number,
    name = "llama2c",
  ) {
    this.name = name;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    pieces.forEach((p, i) => {
      if (!this.lookup.has(p)) this.lookup.set(p, i);
    });
  }

  /** Ids of `text` with the dummy-prefix space; `bos`/`eos` add 1 / 2 as run.c's encode. */
  encode(text: string, { bos = false, eos = false } = {}): number[] {
    const tokens: number[] = [];
    if (bos) tokens.push(this.bosId);
    const bytes = new TextEncoder().encode(text);
    if (bytes.length) {
      const space = this.lookup.get(" ");
      if (space === undefined) {
        throw new ModelError(`${this.name}: the vocabulary has no " " piece`);
      }
      tokens.push(space);
    }
    for (let i = 0; i < bytes.length;) {
      let n = 1; // one UTF-8 character: a lead byte and its continuation bytes (≤ 4)
      while (i + n < bytes.length && (bytes[i + n] & 0xc0) === 0x80 && n < 4) n++;
      const id = this.lookup.get(latin1(bytes.subarray(i, i + n)));
      if (id !== undefined) tokens.push(id);
      else for (let k = 0; k < n; k++) tokens.push(bytes[i + k] + 3);
      i += n;
    }
    for (;;) {
      let best = -1e10, bestId = -1, bestIdx = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = this.lookup.get(this.pieces[tokens[i]] + this.pieces[tokens[i + 1]]);
        if (id !== undefined && this.scores[id] > best) {
          best = this.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    if (eos) tokens.push(this.eosId);
    return tokens;
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /** Bytes of one piece given the previous token (run.c's decode). */
  pieceBytes(prev: number | undefined, id: number): number[] {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new ModelError(
        `${this.name} decode: id ${id} is outside the vocabulary (${this.vocabSize})`,
      );
    }
    // BOS/EOS are stored as "\n<s>\n" / "\n</s>\n" by llama2.c's export: print nothing.
    if (id === this.bosId || id === this.eosId) return [];
    let piece = this.pieces[id];
    if ((prev === undefined || prev === this.bosId) && piece.startsWith(" ")) {
      piece = piece.slice(1);
    }
    const m = BYTE_PIECE.exec(piece);
    if (m) return [parseInt(m[1], 16)];
    return Array.from(piece, (ch) => ch.charCodeAt(0));
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    ids.forEach((id, i) => bytes.push(...this.pieceBytes(i === 0 ? undefined : ids[i - 1], id)));
    return new TextDecoder().decode(new Uint8Array(bytes));
  }
}

export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  path: string,
  vocabSize?: number,
): Llama2cTokenizer {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new ModelError(`${path}: too short for a llama2.c tokenizer`);
  const maxLen = dv.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) {
    throw new ModelError(
      `${path}: max_token_length ${maxLen} is not valid (not a llama2.c tokenizer?)`,
    );
  }
  const pieces: string[] = [], scores: number[] = [];
  let at = 4;
  while (at < bytes.length && (vocabSize === undefined || pieces.length < vocabSize)) {
    if (at + 8 > bytes.length) throw new ModelError(`${path}: truncated at token ${pieces.length}`);
    const score = dv.getFloat32(at, true), len = dv.getInt32(at + 4, true);
    at += 8;
    if (len < 0 || len > maxLen || at + len > bytes.length) {
      throw new ModelError(`${path}: token ${pieces.length} has a bad length ${len} (truncated?)`);
    }
    pieces.push(latin1(bytes.subarray(at, at + len)));
    scores.push(score);
    at += len;
  }
  if (vocabSize !== undefined && pieces.length !== vocabSize) {
    throw new ModelError(
      `${path}: ${pieces.length} tokens, but the model's vocabulary has ${vocabSize}`,
    );
  }
  return new Llama2cTokenizer(
    pieces,
    Float32Array.from(scores),
    maxLen,
    `llama2c:${path.split("/").pop()}`,
  );
}

/** Read a llama2.c tokenizer file (optionally checking it has `vocabSize` tokens). */
export function readLlama2cTokenizer(path: string, vocabSize?: number): Llama2cTokenizer {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(path);
  } catch (e) {
    throw new ModelError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseLlama2cTokenizer(bytes, path, vocabSize);
}
