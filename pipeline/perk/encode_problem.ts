/**
 * A data-layer Problem in a model's tokens: each "Document {i}: …" segment followed by EOS
 * (the prefix masked from the inner loss), the question prompt alone, and the target + EOS.
 */
import type { Problem } from "../data/problems.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import type { EncodedProblem } from "./batch.ts";

export type IdProblem = EncodedProblem & { readonly id: string };

/**
 * What the outer loss scores: "support_answer" — the problem's target, for BabiLong the
 * supporting facts then the answer (the paper's); "answer" — the answer alone.
 */
export type TargetKey = "support_answer" | "answer";
export const TARGET_KEYS: readonly TargetKey[] = ["support_answer", "answer"];

const PREFIX = /^(Document \d+:)/;

/** Context segments as token rows ("Document i:" prefix lengths masked, EOS last). */
export function encodeSegments(
  tok: TextTokenizer,
  context: readonly string[],
  eos = tok.eosId,
): { segments: Int32Array[]; prefixLengths: number[] } {
  const segments: Int32Array[] = [], prefixLengths: number[] = [];
  for (const seg of context) {
    const m = PREFIX.exec(seg);
    const ids = tok.encode(seg);
    segments.push(Int32Array.from([...ids, eos]));
    prefixLengths.push(m ? tok.encode(m[1]).length : 0);
  }
  return { segments, prefixLengths };
}

export function encodeProblem(
  tok: TextTokenizer,
  p: Problem,
  eos = tok.eosId,
  target: TargetKey = "support_answer",
): IdProblem {
  const { segments, prefixLengths } = encodeSegments(tok, p.context, eos);
  const text = target === "answer" ? p.answerTarget : p.target;
  return {
    id: p.id,
    segments,
    prefixLengths,
    prompt: Int32Array.from(tok.encode(p.prompt)),
    target: Int32Array.from([...tok.encode(" " + text.trimStart()), eos]),
  };
}

/**
 * The problem with its documents renumbered: segment s is prefixed "Document {perm[s]}:"
 * (the authors' code draws the document indices afresh every training step, so the model
 * cannot tie a fact to a number). Segments without a "Document" prefix are kept as they are.
 * Tokens after the prefix are unchanged: GPT-2-style tokenisers split at the space that
 * follows the colon, so prefix and body tokenise independently.
 */
export function renumberDocuments<P extends EncodedProblem>(
  tok: TextTokenizer,
  p: P,
  perm: readonly number[],
): P {
  if (perm.length !== p.segments.length) {
    throw new RangeError(`renumber: ${perm.length} numbers for ${p.segments.length} documents`);
  }
  const segments: Int32Array[] = [], prefixLengths: number[] = [];
  p.segments.forEach((seg, s) => {
    const pre = p.prefixLengths[s];
    if (pre === 0) {
      segments.push(seg);
      prefixLengths.push(0);
      return;
    }
    const prefix = tok.encode(`Document ${perm[s]}:`);
    const out = new Int32Array(prefix.length + seg.length - pre);
    out.set(prefix);
    out.set(seg.subarray(pre), prefix.length);
    segments.push(out);
    prefixLengths.push(prefix.length);
  });
  return { ...p, segments, prefixLengths };
}
