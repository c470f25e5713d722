/**
 * PERK on your own document: the text is cut into "Document i:" segments as training contexts
 * are (about `segment_tokens` tokens, at sentence boundaries), encoded once by the inner loop
 * from the meta-learned θ₀, rates and weighting model, and then any number of questions are
 * answered from the question alone with the adapted LoRA. The adapted LoRA can be written as
 * a PEFT adapter (`generate --adapter` and PEFT load it).
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { documents, groupSentences } from "../data/chunker.ts";
import { perkPrompt } from "../data/prompts.ts";
import { splitSentences } from "../data/sentences.ts";
import { baseTokenizer, resolveBase } from "../base/base_stage.ts";
import { generateGreedyGpu } from "../model/gpu_generate.ts";
import { gpuLora, GpuModel } from "../model/gpu_model.ts";
import { exportPeft } from "../model/peft.ts";
import type { Model } from "../model/weights.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { encodeSegments } from "./encode_problem.ts";
import { perkLM } from "./lm_adapter.ts";
import { encodeContext } from "./meta_step.ts";
import type { MetaTrainedPerk } from "./meta_source.ts";
import { loraFor } from "./stages.ts";
import { disposeParams, uploadMeta } from "./train.ts";
import { weightingShapes } from "./weighting.ts";

/**
 * A document as PERK's context: lines, then sentences, packed into segments of about
 * `segmentTokens` tokens (a sentence longer than a segment is cut at word boundaries),
 * each shown as "Document {i}: …".
 */
export function documentSegments(
  tok: TextTokenizer,
  text: string,
  segmentTokens: number,
): string[] {
  const sentences: string[] = [];
  for (const line of text.split(/\n\s*\n|\r?\n/)) {
    for (const s of splitSentences(line)) {
      if (tok.encode(s).length <= segmentTokens) {
        sentences.push(s);
        continue;
      }
      let cur: string[] = [];
      for (const w of s.split(" ")) {
        if (cur.length && tok.encode([...cur, w].join(" ")).length > segmentTokens) {
          sentences.push(cur.join(" "));
          cur = [];
        }
        cur.push(w);
      }
      if (cur.length) sentences.push(cur.join(" "));
    }
  }
  if (!sentences.length) throw new Error("the document is empty");
  const tokens = sentences.map((s) => tok.encode(s).length);
  const groups = groupSentences(
    { sentences, tokens, totalTokens: tokens.reduce((a, b) => a + b, 0) },
    segmentTokens,
  );
  return documents(groups.map((g) => g.join(" ")));
}

export interface Encoded {
  readonly documents: number;
  readonly tokens: number;
  readonly ms: number;
}

/** A meta-trained PERK on the GPU runtime, reading one document at a time. */
export class Reader {
  #adapted: Tensor[] = [];
  #documents = 0;
  readonly tok: TextTokenizer;
  readonly base: Model;
  readonly #model: GpuModel;
  readonly #lora: ReturnType<typeof loraFor>;
  readonly #phiShapes: number[][];

  constructor(readonly rt: Runtime, readonly meta: MetaTrainedPerk, base?: Model) {
    this.base = base ?? resolveBase(meta.base);
    this.tok = baseTokenizer(meta.base, this.base);
    this.#lora = loraFor(this.base, { ...meta.params, dropout: 0 });
    const want = this.#lora.specs.map((s) => s.size), got = meta.state.theta0.map((x) => x.length);
    if (want.length !== got.length || want.some((n, k) => n !== got[k])) {
      throw new Error(
        `the model does not fit this PERK: its LoRA has ${want.length} tensors of rank ` +
          `${meta.params.rank}, the meta-parameters ${got.length} of other sizes; use the base ` +
          "it was meta-trained from (leave out --model)",
      );
    }
    this.#phiShapes = weightingShapes(this.base.config.dim).map((s) => [...s]);
    this.#model = GpuModel.upload(rt, this.base);
  }

  /** The document's segments (what `encode` reads). */
  segments(text: string): string[] {
    return documentSegments(this.tok, text, this.meta.segmentTokens);
  }

  /** Encode a document (replacing the last one): N inner steps from θ₀ over its segments. */
  encode(text: string, onProgress?: (done: number, total: number) => void): Promise<Encoded> {
    return this.encodeDocuments(this.segments(text), onProgress);
  }

  /** Encode "Document i: …" segments as they are (a problem's context, for one). */
  async encodeDocuments(
    context: readonly string[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<Encoded> {
    const rt = this.rt, st = this.meta.state, lora = this.#lora;
    const { segments, prefixLengths } = encodeSegments(this.tok, context);
    const t0 = performance.now();
    const mp = uploadMeta(rt, st, {
      theta0: lora.specs.map((s) => [...s.shape]),
      phi: this.#phiShapes,
    });
    try {
      const lm = perkLM(this.#model, lora.specs, lora.scale, 0);
      const adapted = await encodeContext(
        lm,
        { segments, prefixLengths, prompt: new Int32Array(0), target: new Int32Array(0) },
        mp,
        // About 8K tokens a group (32 segments of 256): what the 8K experiments run unaccumulated.
        { steps: this.meta.params.steps, groups: Math.ceil(segments.length / 32), onProgress },
      );
      this.#adapted.forEach((t) => t.dispose());
      this.#adapted = adapted;
      this.#documents = context.length;
      await rt.sync();
    } finally {
      disposeParams(mp);
    }
    return {
      documents: context.length,
      tokens: segments.reduce((n, s) => n + s.length, 0),
      ms: performance.now() - t0,
    };
  }

  /** Answer from the question alone with the adapted LoRA (greedy). */
  async answer(question: string, maxNewTokens = this.meta.params.max_new_tokens) {
    if (!this.#adapted.length) throw new Error("encode a document first");
    const t0 = performance.now();
    const prompt = this.tok.encode(perkPrompt(this.#documents, question));
    const [gen] = await generateGreedyGpu(this.#model, [prompt], {
      maxNewTokens,
      lora: gpuLora(this.#lora.specs, this.#adapted, this.#lora.scale, 0),
    });
    const text = this.tok.decode(gen.tokens).trim();
    const output = /<output>([\s\S]*?)(<\/output>|$)/.exec(text)?.[1]?.trim();
    return { text, answer: output ?? text, ms: performance.now() - t0 };
  }

  /** The adapted LoRA as a PEFT adapter in `dir`. */
  async saveAdapter(dir: string, baseModel = ""): Promise<void> {
    if (!this.#adapted.length) throw new Error("encode a document first");
    const lora = this.#lora, data = new Float32Array(lora.data.length);
    for (const [k, t] of this.#adapted.entries()) {
      data.set(await this.rt.readF32(t), lora.specs[k].offset);
    }
    exportPeft(dir, this.base.config, { ...lora, data }, { baseModel });
  }

  dispose(): void {
    this.#adapted.forEach((t) => t.dispose());
    this.#adapted = [];
    this.#model.dispose();
  }
}
