/**
 * A data-layer Problem in a model's tokens: each "Document {i}: …" segment followed by EOS
 * (the prefix masked from the inner loss), the question prompt alone, and the target + EOS.
 */
import type { Problem } from "../data/problems.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import type { EncodedProblem } from "./batch.ts";

export type IdProblem = EncodedProblem & { readonly id: string };

const PREFIX = /^(Document \d+:)/;

export function encodeProblem(tok: TextTokenizer, p: Problem, eos = tok.eosId): IdProblem {
  const segments: Int32Array[] = [], prefixLengths: number[] = [];
  for (const seg of p.context) {
    const m = PREFIX.exec(seg);
    const ids = tok.encode(seg);
    segments.push(Int32Array.from([...ids, eos]));
    prefixLengths.push(m ? tok.encode(m[1]).length : 0);
  }
  const target = Int32Array.from([...tok.encode(" " + p.target.trimStart()), eos]);
  return {
    id: p.id,
    segments,
    prefixLengths,
    prompt: Int32Array.from(tok.encode(p.prompt)),
    target,
  };
}
