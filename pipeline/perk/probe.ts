/**
 * The inner-rate probe: for a base model and a LoRA config, how much N inner AdamW steps at a
 * constant rate memorise one context, and how test-time training alone answers. Meta-training
 * starts its learned rates from `inner_lr`, so a rate that moves nothing (or wrecks the model)
 * leaves the outer loop nothing to learn from; the probe measures that before an hour of
 * meta-training does.
 *
 * For each rate, every problem's context is encoded exactly as PERK's answer stage encodes it
 * (encodeContext from θ₀ = PEFT's LoRA init, the rate for every step and tensor, φ₀ the fresh
 * weighting model), then:
 *  - the plain next-token NLL of the segments before and after (the context loss), also over
 *    the tokens of the story's facts ("X Event k: …" sentences) and of the supporting facts
 *    alone: the facts are what the inner loop must store;
 *  - greedy answers from the question alone, scored with the experiment metric (test-time
 *    training accuracy), beside the no-encode control (answers from θ₀, i.e. the base).
 *
 * φ₀ has W2 = 0, so every token weight is softplus_β(b2 = 0) = ln2/β ≈ 0.231: the inner
 * gradient is the plain NLL gradient times that constant. AdamW's update m̂/(√v̂ + ε) does not
 * see a constant gradient scale (only against ε), so the rate is, to first order, how far each
 * LoRA entry moves per step.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import type { Problem } from "../data/problems.ts";
import { type Metric, scoreItem } from "../data/scorers.ts";
import { generateGreedyGpu } from "../model/gpu_generate.ts";
import { gpuLora, GpuModel } from "../model/gpu_model.ts";
import { defaultLoraConfig, initLora } from "../model/lora.ts";
import type { Model } from "../model/weights.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { type EncodedProblem, innerBatch } from "./batch.ts";
import { encodeProblem } from "./encode_problem.ts";
import { perkLM } from "./lm_adapter.ts";
import { encodeContext, LOGITS_BUDGET, type MetaParams } from "./meta_step.ts";
import { type PerkLM, uploadTargets } from "./objectives.ts";
import { initWeighting, WEIGHTING_BETA, weightingShapes } from "./weighting.ts";

export interface ProbeOptions {
  /** LoRA rank and alpha (rank-stabilised scale alpha/√rank, as PERK). */
  readonly rank: number;
  readonly alpha: number;
  /** Inner steps N. */
  readonly steps: number;
  /** The constant inner rates to compare. */
  readonly rates: readonly number[];
  /** Greedy decoding budget per answer. */
  readonly maxNewTokens: number;
  /** Seed of the LoRA init (φ₀ uses seed + 17, as the PERK stages). Default 0. */
  readonly seed?: number;
  /** Accumulation groups K over the segments (exact; only memory changes). Default 1. */
  readonly groups?: number;
  /** How answers are scored. Default "perk-em" (the experiments'). */
  readonly metric?: Metric;
}

/** Mean NLL per token (nats): per problem over the tokens in question, then over problems. */
export interface LossPair {
  readonly before: number;
  readonly after: number;
}

export interface Accuracy {
  readonly correct: number;
  readonly n: number;
  readonly accuracy: number;
}

export interface ProbeRow extends Accuracy {
  readonly rate: number;
  readonly context: LossPair;
  /** Tokens of every event-prefixed fact of the story. */
  readonly facts: LossPair;
  /** Tokens of the supporting facts only. */
  readonly support: LossPair;
  readonly seconds: number;
}

export interface ProbeResult {
  readonly rows: ProbeRow[];
  /** Answers from θ₀ without encoding (B = 0: the base model itself). */
  readonly control: Accuracy;
  /** The losses at θ₀ (the "before" of every rate). */
  readonly before: { readonly context: number; readonly facts: number; readonly support: number };
  /** Initial token weight of φ₀ (the same for every token). */
  readonly tokenWeight: number;
  /** LoRA scale alpha/√rank. */
  readonly scale: number;
  /** Scored tokens over all problems: whole segments, facts, supporting facts. */
  readonly tokens: { readonly context: number; readonly facts: number; readonly support: number };
  /** Facts whose token span could not be located (tokenisation not aligned at its ends). */
  readonly unlocated: number;
}

/** Loss positions of one segment: the position predicting each token of a fact. */
interface Masks {
  readonly facts: ReadonlySet<number>[];
  readonly support: ReadonlySet<number>[];
  readonly unlocated: number;
}

const FACT = /\S+ Event \d+: [^.!?]*[.!?]/g;

/**
 * The token indices [a, b) of text[start, end) within `ids` = tok.encode(text), or undefined
 * when the tokenisation does not split there. A leading space belongs to the fact's first
 * token (GPT-2-style BPE), so the cut before it is taken before that space.
 */
function tokenSpan(
  tok: TextTokenizer,
  text: string,
  ids: readonly number[],
  start: number,
  end: number,
): [number, number] | undefined {
  const cut = (at: number) => {
    const pre = tok.encode(text.slice(0, at));
    return pre.every((id, i) => ids[i] === id) ? pre.length : undefined;
  };
  const a = cut(start > 0 && text[start - 1] === " " ? start - 1 : start);
  const b = cut(end);
  return a === undefined || b === undefined || b <= a ? undefined : [a, b];
}

function masksOf(tok: TextTokenizer, p: Problem): Masks {
  let unlocated = 0;
  const facts: Set<number>[] = [], support: Set<number>[] = [];
  for (const text of p.context) {
    const ids = tok.encode(text);
    const f = new Set<number>(), s = new Set<number>();
    for (const m of text.matchAll(FACT)) {
      const span = tokenSpan(tok, text, ids, m.index, m.index + m[0].length);
      if (!span) {
        unlocated++;
        continue;
      }
      const isSupport = p.support.includes(m[0]);
      // Token j is predicted at position j − 1.
      for (let j = Math.max(1, span[0]); j < span[1]; j++) {
        f.add(j - 1);
        if (isSupport) s.add(j - 1);
      }
    }
    facts.push(f);
    support.push(s);
  }
  return { facts, support, unlocated };
}

/**
 * Per segment, the NLL at each scored position (NaN where nothing is scored: the document
 * prefix, the last token), from forwards over groups of segments whose logits fit the memory
 * bound (LOGITS_BUDGET).
 */
async function positionLosses(
  lm: PerkLM,
  problem: EncodedProblem,
  lora: readonly Tensor[],
): Promise<Float32Array[]> {
  const rt = lm.rt, n = problem.segments.length;
  const len = innerBatch(problem).len;
  const budget = Math.min(LOGITS_BUDGET, rt.maxBindingBytes);
  const perGroup = Math.max(1, Math.floor(budget / (len * (lm.vocab ?? 1) * 4)));
  const out: Float32Array[] = [];
  for (let first = 0; first < n; first += perGroup) {
    const order = Array.from({ length: Math.min(perGroup, n - first) }, (_, i) => first + i);
    const b = innerBatch(problem, order);
    const targets = uploadTargets(rt, b);
    const nll = rt.scope(() => rt.keep(lm.nll(b, targets, lora).nll));
    const values = await rt.readF32(nll);
    nll.dispose();
    targets.dispose();
    order.forEach((s, r) => {
      const row = new Float32Array(problem.segments[s].length).fill(NaN);
      for (let t = 0; t < row.length; t++) {
        if (b.targets[r * b.len + t] >= 0) row[t] = values[r * b.len + t];
      }
      out.push(row);
    });
  }
  return out;
}

/** Mean of the losses at the positions `pick` selects (every scored one when undefined). */
function meanLoss(
  losses: readonly Float32Array[],
  pick?: readonly ReadonlySet<number>[],
): { sum: number; count: number } {
  let sum = 0, count = 0;
  losses.forEach((row, s) => {
    row.forEach((v, t) => {
      if (Number.isNaN(v) || (pick && !pick[s].has(t))) return;
      sum += v;
      count++;
    });
  });
  return { sum, count };
}

/** Which tokens a loss is taken over: all scored ones, the facts', the supporting facts'. */
const KINDS = ["context", "facts", "support"] as const;
type Kind = typeof KINDS[number];
const pickOf = (m: Masks, kind: Kind) => (kind === "context" ? undefined : m[kind]);

/** Running per-problem means (problems without such tokens are left out). */
class Mean {
  #total = 0;
  #n = 0;
  add(x: { sum: number; count: number }): void {
    if (x.count === 0) return;
    this.#total += x.sum / x.count;
    this.#n++;
  }
  get value(): number {
    return this.#n ? this.#total / this.#n : NaN;
  }
}

const accuracy = (correct: number, n: number): Accuracy => ({
  correct,
  n,
  accuracy: n ? correct / n : 0,
});

/**
 * Run the probe. `onProgress` gets, after each pass (θ₀ first, then each rate), a line and the
 * result so far, so a caller can print rows as they finish (a run cut short keeps them).
 * The model is uploaded here and released at the end; `problems` should be validation or
 * training problems (the probe chooses a hyperparameter).
 */
export async function probeInnerRates(
  rt: Runtime,
  base: Model,
  tok: TextTokenizer,
  problems: readonly Problem[],
  o: ProbeOptions,
  onProgress: (line: string, sofar: ProbeResult) => void = () => {},
): Promise<ProbeResult> {
  const metric = o.metric ?? "perk-em", seed = o.seed ?? 0;
  const model = GpuModel.upload(rt, base);
  const held: Tensor[] = [];
  const keep = (t: Tensor) => {
    held.push(rt.keep(t));
    return t;
  };
  try {
    const lora = initLora(
      base.config,
      defaultLoraConfig(base.config, {
        rank: o.rank,
        alpha: o.alpha,
        rsLora: true,
        dropout: 0,
        seed,
      }),
    );
    const lm = perkLM(model, lora.specs, lora.scale, 0);
    const theta0 = lora.specs.map((s) =>
      keep(rt.tensor(lora.data.slice(s.offset, s.offset + s.size), [...s.shape]))
    );
    const phiHost = initWeighting(base.config.dim, seed + 17);
    const wsh = weightingShapes(base.config.dim);
    const phi = phiHost.map((x, k) => keep(rt.tensor(x, wsh[k])));
    // W2 = 0: every weight is softplus_β(b2).
    const tokenWeight = Math.log1p(Math.exp(WEIGHTING_BETA * phiHost[3][0])) / WEIGHTING_BETA;

    const encoded = problems.map((p) => encodeProblem(tok, p));
    const masks = problems.map((p) => masksOf(tok, p));
    const score = (p: Problem, tokens: number[]) =>
      scoreItem(metric, { prediction: tok.decode(tokens), target: p.target, question: p.question });
    const answer = async (e: EncodedProblem, adapter: readonly Tensor[]) => {
      const [gen] = await generateGreedyGpu(model, [Array.from(e.prompt)], {
        maxNewTokens: o.maxNewTokens,
        lora: gpuLora(lora.specs, [...adapter], lora.scale, 0),
      });
      return gen.tokens;
    };

    // θ₀: losses before encoding (the same for every rate) and the no-encode control.
    let t0 = performance.now();
    let controlRight = 0;
    const tokens = { context: 0, facts: 0, support: 0 };
    const at0 = { context: new Mean(), facts: new Mean(), support: new Mean() };
    for (const [i, e] of encoded.entries()) {
      const losses = await positionLosses(lm, e, theta0);
      for (const kind of KINDS) {
        const x = meanLoss(losses, pickOf(masks[i], kind));
        tokens[kind] += x.count;
        at0[kind].add(x);
      }
      controlRight += score(problems[i], await answer(e, theta0));
    }
    const rows: ProbeRow[] = [];
    const result: ProbeResult = {
      rows,
      control: accuracy(controlRight, problems.length),
      before: { context: at0.context.value, facts: at0.facts.value, support: at0.support.value },
      tokenWeight,
      scale: lora.scale,
      tokens,
      unlocated: masks.reduce((a, x) => a + x.unlocated, 0),
    };
    onProgress(
      `θ₀ (no encode): ${controlRight}/${problems.length} right; ${tokens.context} context, ` +
        `${tokens.facts} fact tokens (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      result,
    );

    for (const rate of o.rates) {
      t0 = performance.now();
      const lr = keep(rt.tensor(new Float32Array(o.steps * theta0.length).fill(rate), [
        o.steps * theta0.length,
      ]));
      const mp: MetaParams = { theta0, lr, phi };
      const after = { context: new Mean(), facts: new Mean(), support: new Mean() };
      let right = 0;
      for (const [i, e] of encoded.entries()) {
        const adapted = await encodeContext(lm, e, mp, { steps: o.steps, groups: o.groups });
        try {
          const losses = await positionLosses(lm, e, adapted);
          for (const kind of KINDS) after[kind].add(meanLoss(losses, pickOf(masks[i], kind)));
          right += score(problems[i], await answer(e, adapted));
        } finally {
          adapted.forEach((t) => t.dispose());
        }
      }
      const pair = (kind: Kind): LossPair => ({
        before: result.before[kind],
        after: after[kind].value,
      });
      const row: ProbeRow = {
        rate,
        context: pair("context"),
        facts: pair("facts"),
        support: pair("support"),
        ...accuracy(right, problems.length),
        seconds: (performance.now() - t0) / 1000,
      };
      rows.push(row);
      onProgress(
        `rate ${rate.toExponential()}: context ${row.context.before.toFixed(3)} → ${
          row.context.after.toFixed(3)
        }, facts ${row.facts.before.toFixed(3)} → ${row.facts.after.toFixed(3)}, support ${
          row.support.before.toFixed(3)
        } → ${row.support.after.toFixed(3)}, ${right}/${problems.length} right (${
          row.seconds.toFixed(1)
        } s)`,
        result,
      );
    }
    return result;
  } finally {
    held.forEach((t) => t.dispose());
    model.dispose();
  }
}
