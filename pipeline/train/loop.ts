/**
 * The training loop shared by pretraining, PERK's meta-training and FT-ICR. The caller gives
 * a `Trainee`: what one optimisation step does (and the record it makes), how to validate,
 * how to copy the parameters, what to checkpoint. The loop owns the rest: the step counter
 * and epochs, the learning-rate schedule, the validation cadence, patience (early stopping),
 * the best parameters so far, `stopAfter`, progress callbacks, and checkpoints (one file,
 * checkpoint.ts, written atomically after a step) that resume exactly — a resumed run makes
 * the same steps as an uninterrupted one as long as the trainee's steps are functions of
 * (seed, step) and its saved state.
 *
 * An error thrown by a step stops the run before anything of that step is recorded or
 * written: the last checkpoint stays the one before it.
 */
import { readCheckpoint, writeCheckpoint } from "./checkpoint.ts";
import { lrAt, type Schedule } from "./schedule.ts";
import type { Tensor } from "../model/weights.ts";

export interface StepContext {
  /** 0-based step. */
  readonly step: number;
  readonly epoch: number;
  /** The step's index within its epoch. */
  readonly inEpoch: number;
  /** The schedule's learning rate at this step. */
  readonly lr: number;
}

/** A validation result: its loss decides the best parameters; other fields are the caller's. */
export interface Validation {
  readonly loss: number;
}

/** Copies of the parameters: the best so far, kept by the loop. */
export interface Keeper<B> {
  /** A copy of the current parameters. */
  snapshot(): B;
  /** Free a copy that is no longer the best. */
  drop(b: B): void;
  /** Its tensors, for a checkpoint. */
  tensors(b: B): Promise<[string, Tensor][]>;
  /** A copy from a checkpoint's tensors (the names `tensors` gave). */
  restore(t: ReadonlyMap<string, Tensor>): B;
}

/** The training state a checkpoint holds besides the loop's own. */
export interface Saved {
  /** Parameters and optimizer state. */
  readonly tensors: [string, Tensor][];
  /** Anything else the trainee needs back, JSON (e.g. a loss measured before step 1). */
  readonly extra?: unknown;
}

export interface Resumed {
  /** Steps done when the checkpoint was written. */
  readonly step: number;
  readonly tensors: ReadonlyMap<string, Tensor>;
  readonly extra: unknown;
}

export interface Trainee<R, V extends Validation = Validation, B = never> {
  /** Before the first step of this call: restore a checkpoint's state, or set up a fresh run. */
  start(resumed: Resumed | undefined): void | Promise<void>;
  /**
   * One optimisation step. Resolves to the step's record given the validation that followed
   * it (undefined: none at this step). Throw to stop the run (nothing of the step is written).
   */
  step(c: StepContext): Promise<(v: V | undefined) => R>;
  /** Validation of the current parameters; absent: no validation, no early stopping. */
  readonly validate?: () => Promise<V>;
  /** How to keep the best parameters; absent: not kept (the result's `best` is undefined). */
  readonly keeper?: Keeper<B>;
  /** The state to checkpoint (needed only with `checkpoint`). */
  save(): Promise<Saved>;
}

export interface CheckpointOptions {
  readonly path: string;
  /** Save every this many steps (default 1); also after every validation, a stop and the end. */
  readonly every?: number;
  /** What makes the checkpoint this run's (options, data); a different one is refused. */
  readonly identity?: string;
  /** The error for a checkpoint of another identity. */
  readonly mismatch?: (path: string) => Error;
}

export interface LoopOptions {
  readonly totalSteps: number;
  readonly schedule: Schedule;
  /** Default: totalSteps (a single epoch). */
  readonly stepsPerEpoch?: number;
  /** Validations per epoch (default 2, the paper's), and always after the last step. */
  readonly evalsPerEpoch?: number;
  /** Stop after this many validations without a new best (default: never). */
  readonly patience?: number;
  /** Stop after this many steps in this call (tests simulate an interruption). */
  readonly stopAfter?: number;
  readonly checkpoint?: CheckpointOptions;
  /**
   * Checked at every step boundary (after the previous step's checkpoint is written): an
   * aborted signal stops the loop with its reason, and a resumed run continues exactly.
   */
  readonly signal?: AbortSignal;
}

export interface LoopResult<R, B> {
  readonly history: R[];
  /**
   * The parameters at the lowest validation loss, the caller's to free; undefined when none
   * was ever the best (never validated, or no keeper): the current parameters are the result.
   */
  readonly best: B | undefined;
  /** Infinity when never validated. */
  readonly bestValLoss: number;
  /** The step of the best parameters (stepsDone when there are none). */
  readonly bestStep: number;
  /** Early-stopped or all steps done (false: interrupted by stopAfter). */
  readonly finished: boolean;
  readonly stepsDone: number;
  readonly totalSteps: number;
}

interface LoopState<R> {
  step: number;
  /** null: never validated (JSON has no Infinity). */
  bestValLoss: number | null;
  bestStep: number;
  sinceBest: number;
  stopped: boolean;
  history: R[];
}

const FORMAT = "pipeline/train loop 1";

interface Meta<R> {
  readonly format: string;
  readonly identity: string | null;
  readonly loop: LoopState<R>;
  readonly hasBest: boolean;
  readonly extra: unknown;
}

function isMeta<R>(x: unknown): x is Meta<R> {
  if (typeof x !== "object" || x === null || !("format" in x) || x.format !== FORMAT) return false;
  if (!("loop" in x) || typeof x.loop !== "object" || x.loop === null) return false;
  return "step" in x.loop && "history" in x.loop && Array.isArray(x.loop.history);
}

/** Tensors whose names start with `prefix`, the prefix removed. */
function under(t: ReadonlyMap<string, Tensor>, prefix: string): Map<string, Tensor> {
  return new Map(
    [...t].filter(([n]) => n.startsWith(prefix)).map(([n, x]) => [n.slice(prefix.length), x]),
  );
}

export async function trainLoop<R, V extends Validation = Validation, B = never>(
  o: LoopOptions,
  t: Trainee<R, V, B>,
  onRecord: (r: R) => void = () => {},
): Promise<LoopResult<R, B>> {
  const total = o.totalSteps;
  if (!(Number.isInteger(total) && total >= 0)) {
    throw new RangeError(`train loop: totalSteps ${total} must be an integer ≥ 0`);
  }
  const perEpoch = o.stepsPerEpoch ?? Math.max(1, total);
  if (!(Number.isInteger(perEpoch) && perEpoch >= 1)) {
    throw new RangeError(`train loop: stepsPerEpoch ${perEpoch} must be an integer ≥ 1`);
  }
  const evalEvery = Math.max(1, Math.floor(perEpoch / (o.evalsPerEpoch ?? 2)));
  const patience = o.patience ?? Infinity;
  const ck = o.checkpoint;
  if (ck?.every !== undefined && !(Number.isInteger(ck.every) && ck.every > 0)) {
    throw new RangeError(`train loop: checkpoint every ${ck.every} must be a positive integer`);
  }

  let s: LoopState<R> = {
    step: 0,
    bestValLoss: null,
    bestStep: 0,
    sinceBest: 0,
    stopped: false,
    history: [],
  };
  let best: B | undefined;
  const saved = ck ? readCheckpoint(ck.path) : undefined;
  if (ck && saved) {
    const meta = saved.meta;
    if (!isMeta<R>(meta)) {
      throw new Error(`${ck.path}: a checkpoint of another format; delete it to start over`);
    }
    if (meta.identity !== (ck.identity ?? null)) {
      throw ck.mismatch?.(ck.path) ??
        new Error(`${ck.path}: this checkpoint was made with other options; delete it`);
    }
    s = meta.loop;
    await t.start({ step: s.step, tensors: under(saved.tensors, "state."), extra: meta.extra });
    if (meta.hasBest && t.keeper) best = t.keeper.restore(under(saved.tensors, "best."));
  } else await t.start(undefined);

  const save = async (path: string) => {
    const state = await t.save();
    const kept = best !== undefined && t.keeper ? await t.keeper.tensors(best) : [];
    const tensors: [string, Tensor][] = [
      ...state.tensors.map(([n, x]): [string, Tensor] => [`state.${n}`, x]),
      ...kept.map(([n, x]): [string, Tensor] => [`best.${n}`, x]),
    ];
    const meta: Meta<R> = {
      format: FORMAT,
      identity: ck?.identity ?? null,
      loop: s,
      hasBest: kept.length > 0,
      extra: state.extra ?? null,
    };
    writeCheckpoint(path, tensors, meta);
  };

  try {
    let ran = 0;
    while (!s.stopped && s.step < total) {
      if (o.stopAfter !== undefined && ran >= o.stopAfter) break;
      o.signal?.throwIfAborted();
      const step = s.step;
      const record = await t.step({
        step,
        epoch: Math.floor(step / perEpoch),
        inEpoch: step % perEpoch,
        lr: lrAt(o.schedule, step),
      });
      s.step++;
      ran++;
      let v: V | undefined;
      if (t.validate && (s.step % evalEvery === 0 || s.step === total)) {
        v = await t.validate();
        if (v.loss < (s.bestValLoss ?? Infinity)) {
          s.bestValLoss = v.loss;
          s.bestStep = s.step;
          s.sinceBest = 0;
          if (t.keeper) {
            const next = t.keeper.snapshot();
            if (best !== undefined) t.keeper.drop(best);
            best = next;
          }
        } else if (++s.sinceBest >= patience) s.stopped = true;
      }
      const rec = record(v);
      s.history.push(rec);
      onRecord(rec);
      const due = s.step % (ck?.every ?? 1) === 0 || v !== undefined || s.stopped ||
        s.step === total;
      if (ck && due) await save(ck.path);
    }
  } catch (e) {
    if (best !== undefined) t.keeper?.drop(best);
    throw e;
  }
  return {
    history: s.history,
    best,
    bestValLoss: s.bestValLoss ?? Infinity,
    bestStep: s.bestValLoss === null ? s.step : s.bestStep,
    finished: s.stopped || s.step >= total,
    stepsDone: s.step,
    totalSteps: total,
  };
}
