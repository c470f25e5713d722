/**
 * The outer loop (meta-train stage, perk-method §3): one problem per step (segment order
 * shuffled), exact TGU meta-gradient on the GPU, outer AdamW on the host with clipping and a
 * cosine schedule; validation loss twice per epoch, early stopping with patience, the best
 * meta-parameters kept. Checkpoints (one safetensors file: meta-parameters, optimizer state,
 * loop state in its metadata) are written atomically after every step and resume exactly:
 * everything random is derived from (seed, step), and the GPU kernels are deterministic.
 * A non-finite loss or gradient stops with an error naming the step and the problem, before
 * anything is written.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import { readSafetensors, SafetensorsReader, writeSafetensors } from "../model/safetensors.ts";
import { type EncodedProblem, outerBatch } from "./batch.ts";
import { encodeContext, type MetaParams, perkMetaGradient } from "./meta_step.ts";
import { outerLoss, type PerkLM, uploadTargets } from "./objectives.ts";
import {
  initOuterState,
  type MetaParam,
  OUTER_DEFAULTS,
  type OuterHyper,
  type OuterState,
  outerStep,
} from "./outer_optim.ts";
import type { AdamWHyper } from "../../kernels/optim/adamw_math.ts";

/**
 * How learned inner rates are parameterised. "log" (default): the outer loop steps u with
 * lr = exp(u), so rates stay positive and move multiplicatively on their own scale. "raw":
 * the authors' form, rates stepped directly and unclamped — at the tiny base's outer rates
 * they go negative within a few dozen steps, and a negative rate makes the inner loop climb
 * the context loss (measured: 97 of 224 negative after 20 steps at outer lr 1e-3).
 */
export type LrParam = "log" | "raw";
export const LR_PARAMS: readonly LrParam[] = ["log", "raw"];

export interface MetaTrainOptions {
  /** The layer of each LoRA tensor: records then carry the rates' geometric mean per layer. */
  readonly rateLayers?: readonly number[];
  readonly steps: number; // inner steps N
  readonly retained: number; // T
  readonly cut?: boolean;
  readonly epochs: number;
  readonly patience: number;
  readonly seed: number;
  readonly outer?: Partial<Omit<OuterHyper, "totalSteps">>;
  readonly innerAdam?: AdamWHyper;
  /** LoRA dropout probability is the model's business; this seeds it per step. */
  readonly dropout?: boolean;
  /** Validation problems used per evaluation (default: all). */
  readonly valLimit?: number;
  /** Evaluations per epoch (paper: 2). */
  readonly evalsPerEpoch?: number;
  /** Checkpoint file (resume from it if present). */
  readonly checkpoint?: string;
  /** Stop after this many outer steps in this call (tests simulate an interruption). */
  readonly stopAfter?: number;
  /** Learned-rate parameterisation (default "log"). */
  readonly lrParam?: LrParam;
  /**
   * Peak outer learning rates of the rate and weighting-model groups (default: outer.lr,
   * the initial adapter's). The schedule scales all three alike.
   */
  readonly groupLr?: { readonly rates?: number; readonly weighting?: number };
  /**
   * A training problem as seen at one outer step, given a permutation of its documents
   * (the authors renumber the "Document i:" prefixes every step, so no fact is tied to a
   * number). Default: the problem as encoded.
   */
  readonly renumber?: <P extends EncodedProblem>(p: P, perm: readonly number[]) => P;
  /** Validation accuracy at each evaluation (optional: it costs a greedy answer each). */
  readonly accuracy?: (s: MetaState) => Promise<number>;
}

/** Host copies of the meta-parameters. */
export interface MetaState {
  readonly theta0: Float32Array[];
  readonly lr: Float32Array; // (N · tensors)
  readonly phi: Float32Array[];
}

export interface TrainRecord {
  readonly step: number;
  readonly epoch: number;
  readonly loss: number;
  readonly gradNorm: number;
  readonly outerLr: number;
  readonly problem: string;
  readonly valLoss?: number;
  readonly valAccuracy?: number;
  /** Learned inner rates after the step: min, geometric mean, max. */
  readonly rates?: { readonly min: number; readonly gmean: number; readonly max: number };
  /** Their geometric mean per layer (index = layer), when the layers are known. */
  readonly ratesByLayer?: readonly number[];
}

export interface MetaTrainResult {
  readonly best: MetaState;
  readonly bestValLoss: number;
  readonly history: TrainRecord[];
  readonly finished: boolean;
  readonly stepsDone: number;
}

interface LoopState {
  step: number;
  bestValLoss: number;
  sinceBest: number;
  stopped: boolean;
  history: TrainRecord[];
}

const clone = (s: MetaState): MetaState => ({
  theta0: s.theta0.map((x) => x.slice()),
  lr: s.lr.slice(),
  phi: s.phi.map((x) => x.slice()),
});

/** Deterministic permutation from (seed, k). */
export function shuffled(n: number, seed: number, k: number): number[] {
  let a = (seed * 2654435761 + k * 40503 + 1) >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

export type Shapes = { theta0: number[][]; phi: number[][] };

function upload(rt: Runtime, s: MetaState, shapes: Shapes): MetaParams {
  return {
    theta0: s.theta0.map((x, i) => rt.keep(rt.tensor(x, shapes.theta0[i]))),
    lr: rt.keep(rt.tensor(s.lr, [s.lr.length])),
    phi: s.phi.map((x, i) => rt.keep(rt.tensor(x, shapes.phi[i]))),
  };
}
function disposeParams(p: MetaParams): void {
  [...p.theta0, p.lr, ...p.phi].forEach((t) => t.dispose());
}

/** Mean outer loss over problems after test-time encoding (no meta-gradient). */
export async function validationLoss(
  lm: PerkLM,
  problems: readonly EncodedProblem[],
  s: MetaState,
  shapes: Shapes,
  steps: number,
): Promise<number> {
  const rt = lm.rt;
  let total = 0;
  for (const p of problems) {
    const mp = upload(rt, s, shapes);
    const adapted = await encodeContext(lm, p, mp, { steps });
    const b = outerBatch(p), t = uploadTargets(rt, b);
    const l = rt.keep(rt.scope(() => outerLoss(lm, b, t, adapted)));
    total += (await rt.readF32(l))[0];
    [l, t, ...adapted].forEach((x) => x.dispose());
    disposeParams(mp);
  }
  return total / Math.max(1, problems.length);
}

export async function metaTrain(
  lm: PerkLM,
  init: MetaState,
  shapes: Shapes,
  train: readonly (EncodedProblem & { id: string })[],
  val: readonly EncodedProblem[],
  o: MetaTrainOptions,
  onRecord: (r: TrainRecord) => void = () => {},
): Promise<MetaTrainResult> {
  const rt = lm.rt;
  const totalSteps = o.epochs * train.length;
  const hyper: OuterHyper = { ...OUTER_DEFAULTS, ...o.outer, totalSteps };
  const evalEvery = Math.max(1, Math.floor(train.length / (o.evalsPerEpoch ?? 2)));
  const logRates = (o.lrParam ?? "log") === "log";
  if (logRates) {
    const bad = init.lr.findIndex((x) => !(x > 0));
    if (bad >= 0) {
      throw new RangeError(
        `meta-train: lr_param "log" needs positive inner rates; rate ${bad} is ${
          init.lr[bad]
        } (set inner_lr > 0 or lr_param raw)`,
      );
    }
  }
  const params: MetaParam[] = [
    ...init.theta0.map((v, i) => ({ name: `theta0.${i}`, value: v.slice(), decay: true })),
    // The checkpoint names the parameterisation, so a resume under the other one is refused.
    logRates
      ? {
        name: "log_lr",
        value: init.lr.map(Math.log),
        decay: false,
        lr: o.groupLr?.rates,
      }
      : { name: "lr", value: init.lr.slice(), decay: false, lr: o.groupLr?.rates },
    // weighting model: W1, b1, W2, b2 — no decay on biases
    ...init.phi.map((v, i) => ({
      name: `phi.${i}`,
      value: v.slice(),
      decay: i % 2 === 0,
      lr: o.groupLr?.weighting,
    })),
  ];
  const J = init.theta0.length;
  const view = (): MetaState => ({
    theta0: params.slice(0, J).map((p) => p.value),
    lr: logRates ? params[J].value.map(Math.exp) : params[J].value,
    phi: params.slice(J + 1).map((p) => p.value),
  });
  let opt: OuterState = initOuterState(params);
  let loop: LoopState = {
    step: 0,
    bestValLoss: Infinity,
    sinceBest: 0,
    stopped: false,
    history: [],
  };
  let best = clone(view());
  if (o.checkpoint && exists(o.checkpoint)) {
    const r = loadCheckpoint(o.checkpoint, params);
    opt = r.opt;
    loop = r.loop;
    best = r.best;
  }
  const valSet = val.slice(0, o.valLimit ?? val.length);
  let ranThisCall = 0;
  while (!loop.stopped && loop.step < totalSteps) {
    if (o.stopAfter !== undefined && ranThisCall >= o.stopAfter) break;
    const epoch = Math.floor(loop.step / train.length);
    const order = shuffled(train.length, o.seed, epoch);
    const drawn = train[order[loop.step % train.length]];
    const problem = o.renumber
      ? o.renumber(drawn, shuffled(drawn.segments.length, o.seed + 2, loop.step))
      : drawn;
    const segOrder = shuffled(problem.segments.length, o.seed + 1, loop.step);
    const state = view();
    const mp = upload(rt, state, shapes);
    const mg = await perkMetaGradient(lm, problem, mp, {
      steps: o.steps,
      retained: o.retained,
      cut: o.cut,
      order: segOrder,
      adam: o.innerAdam,
      dropoutSeed: o.dropout ? (o.seed * 1000003 + loop.step * 16) >>> 0 : undefined,
    });
    const grads = await Promise.all([...mg.theta0, mg.lr, ...mg.phi].map((t) => rt.readF32(t)));
    // d/du of f(exp(u)) = f'(lr)·lr
    if (logRates) grads[J] = grads[J].map((g, i) => g * state.lr[i]);
    [...mg.theta0, mg.lr, ...mg.phi].forEach((t) => t.dispose());
    disposeParams(mp);
    if (!Number.isFinite(mg.loss)) {
      throw new Error(
        `meta-train: non-finite outer loss ${mg.loss} at step ${loop.step} (problem ${problem.id}); ` +
          "no checkpoint was written for it. Lower outer_lr / inner_lr or check the data.",
      );
    }
    let stepInfo;
    try {
      stepInfo = outerStep(params, grads, opt, hyper);
    } catch (e) {
      throw new Error(
        `meta-train: ${(e as Error).message} (problem ${problem.id}); nothing was written`,
      );
    }
    loop.step++;
    ranThisCall++;
    let valLoss: number | undefined, valAccuracy: number | undefined;
    if (loop.step % evalEvery === 0 || loop.step === totalSteps) {
      valLoss = await validationLoss(lm, valSet, view(), shapes, o.steps);
      if (o.accuracy) valAccuracy = await o.accuracy(view());
      if (valLoss < loop.bestValLoss) {
        loop.bestValLoss = valLoss;
        loop.sinceBest = 0;
        best = clone(view());
      } else if (++loop.sinceBest >= o.patience) loop.stopped = true;
    }
    const rec: TrainRecord = {
      step: loop.step,
      epoch,
      loss: mg.loss,
      gradNorm: stepInfo.gradNorm,
      outerLr: stepInfo.lr,
      problem: problem.id,
      ...(valLoss === undefined ? {} : { valLoss }),
      ...(valAccuracy === undefined ? {} : { valAccuracy }),
      rates: rateSummary(view().lr),
      ...(o.rateLayers ? { ratesByLayer: layerMeans(view().lr, o.rateLayers) } : {}),
    };
    loop.history.push(rec);
    onRecord(rec);
    if (o.checkpoint) saveCheckpoint(o.checkpoint, params, opt, loop, best);
  }
  const finished = loop.stopped || loop.step >= totalSteps;
  if (!Number.isFinite(loop.bestValLoss)) best = clone(view());
  return {
    best,
    bestValLoss: loop.bestValLoss,
    history: loop.history,
    finished,
    stepsDone: loop.step,
  };
}

/** Geometric mean of the rates (N steps × J tensors, row-major) of each layer's tensors. */
function layerMeans(lr: Float32Array, layers: readonly number[]): number[] {
  const J = layers.length, L = Math.max(...layers) + 1;
  const sum = new Float64Array(L), count = new Float64Array(L);
  lr.forEach((x, i) => {
    const l = layers[i % J];
    sum[l] += Math.log(Math.abs(x) || 1e-30);
    count[l]++;
  });
  return Array.from(sum, (s, l) => Math.exp(s / Math.max(1, count[l])));
}

function rateSummary(lr: Float32Array) {
  let min = Infinity, max = -Infinity, logSum = 0;
  for (const x of lr) {
    min = Math.min(min, x);
    max = Math.max(max, x);
    logSum += Math.log(Math.abs(x) || 1e-30);
  }
  return { min, gmean: Math.exp(logSum / Math.max(1, lr.length)), max };
}

function exists(p: string): boolean {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
}

function saveCheckpoint(
  path: string,
  params: MetaParam[],
  opt: OuterState,
  loop: LoopState,
  best: MetaState,
) {
  const t: [string, { shape: number[]; data: Float32Array }][] = [];
  params.forEach((p, k) => {
    t.push([`param.${p.name}`, { shape: [p.value.length], data: p.value }]);
    t.push([`adam_m.${p.name}`, { shape: [p.value.length], data: opt.m[k] }]);
    t.push([`adam_v.${p.name}`, { shape: [p.value.length], data: opt.v[k] }]);
  });
  const bestList = [...best.theta0, best.lr, ...best.phi];
  bestList.forEach((x, i) => t.push([`best.${i}`, { shape: [x.length], data: x }]));
  writeSafetensors(path, t, {
    metadata: { perk_loop: JSON.stringify({ ...loop, optStep: opt.step }) },
  });
}

function loadCheckpoint(path: string, params: MetaParam[]) {
  const r = new SafetensorsReader(path);
  const meta = r.header.metadata.perk_loop;
  r.close();
  if (!meta) throw new Error(`${path}: not a PERK meta-train checkpoint (no perk_loop metadata)`);
  const saved = JSON.parse(meta) as LoopState & { optStep: number };
  const ts = readSafetensors(path);
  const get = (n: string, len: number) => {
    const x = ts.get(n);
    if (!x || x.data.length !== len) {
      throw new Error(
        `${path}: tensor ${n} missing or of the wrong size — the checkpoint is from another configuration; delete it to start over`,
      );
    }
    return x.data;
  };
  const opt: OuterState = { step: saved.optStep, m: [], v: [] };
  params.forEach((p) => {
    p.value.set(get(`param.${p.name}`, p.value.length));
    opt.m.push(get(`adam_m.${p.name}`, p.value.length).slice());
    opt.v.push(get(`adam_v.${p.name}`, p.value.length).slice());
  });
  const J = params.length - 1 - params.filter((p) => p.name.startsWith("phi.")).length;
  const bl = params.map((p, i) => get(`best.${i}`, p.value.length).slice());
  const best: MetaState = { theta0: bl.slice(0, J), lr: bl[J], phi: bl.slice(J + 1) };
  const loop: LoopState = {
    step: saved.step,
    bestValLoss: saved.bestValLoss ?? Infinity,
    sinceBest: saved.sinceBest,
    stopped: saved.stopped,
    history: saved.history,
  };
  return { opt, loop, best };
}
