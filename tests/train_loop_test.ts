/**
 * The shared training loop (pipeline/train/) on a host toy: the schedule is the same floats
 * as the per-loop formulas it replaced; checkpoints round-trip through a file and through
 * bytes; validation cadence, patience, best-state keeping and stopAfter; an interrupted run
 * resumes to exactly the uninterrupted one; a failing step writes nothing; a checkpoint of
 * another identity or format is refused.
 */
import assert from "node:assert/strict";
import { lrAt, scheduleByFraction, scheduleBySteps } from "../pipeline/train/schedule.ts";
import {
  decodeCheckpoint,
  encodeCheckpoint,
  readCheckpoint,
  writeCheckpoint,
} from "../pipeline/train/checkpoint.ts";
import { type LoopOptions, type Trainee, trainLoop } from "../pipeline/train/loop.ts";
import { shuffled } from "../pipeline/train/shuffle.ts";
import { writeSafetensors } from "../pipeline/model/safetensors.ts";

/** PERK's outer schedule as it was written in outer_optim.ts (the plain reference). */
function oldCosineLr(
  h: { lr: number; warmupFraction: number; totalSteps: number; schedule?: string },
  step: number,
): number {
  const warm = Math.max(1, Math.ceil(h.warmupFraction * h.totalSteps));
  if (step < warm) return (h.lr * (step + 1)) / warm;
  if (h.schedule === "constant") return h.lr;
  const progress = Math.min(1, (step - warm) / Math.max(1, h.totalSteps - warm));
  return 0.5 * h.lr * (1 + Math.cos(Math.PI * progress));
}

/** Pretraining's schedule as it was written in pretrain.ts (the plain reference). */
function oldPretrainLr(
  o: { lr: number; steps: number; warmupSteps: number; minLrRatio: number },
  step: number,
): number {
  const warm = Math.max(0, Math.min(o.warmupSteps, o.steps - 1));
  if (step < warm) return (o.lr * (step + 1)) / warm;
  const p = Math.min(1, (step - warm) / Math.max(1, o.steps - 1 - warm));
  return o.lr * (o.minLrRatio + (1 - o.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

Deno.test("schedule: the same floats as the outer-loop and pretraining formulas it replaced", () => {
  let n = 0;
  for (const lr of [1e-5, 3e-4, 1e-2, 0.1, 1, 7.3]) {
    for (const totalSteps of [1, 2, 3, 7, 100, 1234]) {
      for (const warmupFraction of [0, 0.03, 0.1, 0.5, 1]) {
        for (const schedule of ["cosine", "constant"] as const) {
          const s = scheduleByFraction(lr, totalSteps, warmupFraction, schedule);
          for (let step = 0; step < totalSteps + 2; step++) {
            const h = { lr, warmupFraction, totalSteps, schedule };
            assert.equal(lrAt(s, step), oldCosineLr(h, step), JSON.stringify({ ...h, step }));
            n++;
          }
        }
      }
      for (const warmupSteps of [0, 1, 2, 10, 5000]) {
        for (const minLrRatio of [0, 0.1, 0.37]) {
          const o = { lr, steps: totalSteps, warmupSteps, minLrRatio };
          const s = scheduleBySteps(lr, totalSteps, warmupSteps, minLrRatio);
          for (let step = 0; step < totalSteps + 2; step++) {
            assert.equal(lrAt(s, step), oldPretrainLr(o, step), JSON.stringify({ ...o, step }));
            n++;
          }
        }
      }
    }
  }
  assert.ok(n > 100_000, `${n} rates compared`);
});

Deno.test("checkpoint: named tensors and JSON round-trip through a file and through bytes", () => {
  const tensors: [string, { shape: number[]; data: Float32Array }][] = [
    ["a.w", { shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 1e-30, -0, 7) }],
    ["b", { shape: [1], data: Float32Array.of(Math.fround(Math.PI)) }],
  ];
  const meta = { step: 3, history: [{ loss: 0.1 + 0.2 }], best: null };
  const fromBytes = decodeCheckpoint(encodeCheckpoint(tensors, meta), "bytes");
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/sub/ck.safetensors`; // the folder is created
    writeCheckpoint(path, tensors, meta);
    const fromFile = readCheckpoint(path)!;
    for (const c of [fromBytes, fromFile]) {
      assert.deepEqual(c.meta, meta);
      assert.deepEqual([...c.tensors.keys()], ["a.w", "b"]);
      for (const [n, t] of tensors) {
        assert.deepEqual([...c.tensors.get(n)!.shape], t.shape);
        assert.deepEqual(c.tensors.get(n)!.data, t.data);
      }
    }
    assert.equal(readCheckpoint(`${dir}/none.safetensors`), undefined);
    writeSafetensors(`${dir}/plain.safetensors`, tensors);
    assert.throws(() => readCheckpoint(`${dir}/plain.safetensors`), /not a training checkpoint/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

interface Rec {
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  valLoss?: number;
}

/**
 * A host toy: momentum SGD on Σ (x − target_k)² over 4 "problems" drawn in a shuffled order;
 * validation is the distance to a fixed point. Deterministic in (seed, step) and its state.
 */
function toy(opts: { failAt?: number; valConst?: number } = {}) {
  const targets = [
    Float32Array.of(1, 2),
    Float32Array.of(-1, 0),
    Float32Array.of(2, 2),
    Float32Array.of(0, 1),
  ];
  const x = new Float32Array(2), mom = new Float32Array(2);
  const saves: number[] = [];
  const trainee: Trainee<Rec, { loss: number }, Float32Array> = {
    start: (r) => {
      if (!r) return;
      x.set(r.tensors.get("x")!.data);
      mom.set(r.tensors.get("mom")!.data);
    },
    step: ({ step, epoch, inEpoch, lr }) => {
      if (step === opts.failAt) return Promise.reject(new Error(`bad step ${step}`));
      const t = targets[shuffled(4, 9, epoch)[inEpoch]];
      let loss = 0;
      for (let i = 0; i < 2; i++) {
        const g = 2 * (x[i] - t[i]);
        loss += (x[i] - t[i]) ** 2;
        mom[i] = 0.5 * mom[i] + g;
        x[i] -= lr * mom[i];
      }
      return Promise.resolve((v) => ({
        step: step + 1,
        epoch,
        lr,
        loss,
        ...(v ? { valLoss: v.loss } : {}),
      }));
    },
    validate: () =>
      Promise.resolve({ loss: opts.valConst ?? (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2 }),
    keeper: {
      snapshot: () => x.slice(),
      drop: () => {},
      tensors: (b) => Promise.resolve([["x", { shape: [2], data: b }]]),
      restore: (t) => t.get("x")!.data.slice(),
    },
    save: () => {
      saves.push(1);
      return Promise.resolve({
        tensors: [["x", { shape: [2], data: x.slice() }], ["mom", {
          shape: [2],
          data: mom.slice(),
        }]],
      });
    },
  };
  return { trainee, x, saves };
}

const base: LoopOptions = {
  totalSteps: 12,
  schedule: scheduleByFraction(0.05, 12, 0.2),
  stepsPerEpoch: 4,
  evalsPerEpoch: 2,
};

Deno.test("loop: schedule, epochs, validation twice per epoch and at the end, best kept", async () => {
  const t = toy();
  const r = await trainLoop(base, t.trainee);
  assert.equal(r.stepsDone, 12);
  assert.ok(r.finished);
  assert.deepEqual(r.history.map((h) => h.epoch), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  r.history.forEach((h, i) => assert.equal(h.lr, lrAt(base.schedule, i)));
  const checked = r.history.filter((h) => h.valLoss !== undefined).map((h) => h.step);
  assert.deepEqual(checked, [2, 4, 6, 8, 10, 12]);
  const vals = r.history.flatMap((h) => h.valLoss === undefined ? [] : [h.valLoss]);
  assert.equal(r.bestValLoss, Math.min(...vals));
  assert.equal(r.bestStep, r.history.find((h) => h.valLoss === r.bestValLoss)!.step);
  assert.ok(r.best !== undefined);
  const c = 0.5;
  assert.equal((r.best[0] - c) ** 2 + (r.best[1] - c) ** 2, r.bestValLoss);
});

Deno.test("loop: patience stops early; no validation means no best", async () => {
  // A validation loss that never falls below the first one's (equal is no improvement).
  const flat = toy({ valConst: 3 });
  const r = await trainLoop({ ...base, patience: 2, evalsPerEpoch: 4 }, flat.trainee);
  const checks = r.history.filter((h) => h.valLoss !== undefined);
  assert.equal(checks.length, 3); // the first is the best; two more without a new best
  assert.ok(r.finished);
  assert.equal(r.stepsDone, 3);
  assert.equal(r.bestStep, 1);
  const { validate: _v, keeper: _k, ...plain } = toy().trainee;
  const q = await trainLoop(base, plain);
  assert.equal(q.best, undefined);
  assert.equal(q.bestValLoss, Infinity);
  assert.equal(q.bestStep, 12);
});

Deno.test("loop: an interrupted run resumes to exactly the uninterrupted one", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const straight = toy();
    const full = await trainLoop(base, straight.trainee);
    for (const every of [1, 5]) {
      const path = `${dir}/ck${every}.safetensors`;
      const ck = { ...base, checkpoint: { path, every, identity: "toy" } };
      const a = toy();
      const part = await trainLoop({ ...ck, stopAfter: 7 }, a.trainee);
      assert.equal(part.stepsDone, 7);
      assert.ok(!part.finished);
      // every 5: saved at 5 and at the validations (6); step 7 is redone on resume.
      const b = toy();
      const rest = await trainLoop(ck, b.trainee);
      assert.ok(rest.finished);
      assert.deepEqual(rest.history, full.history);
      assert.deepEqual(b.x, straight.x);
      assert.deepEqual(rest.best, full.best);
      assert.equal(rest.bestStep, full.bestStep);
      await assert.rejects(
        trainLoop({ ...ck, checkpoint: { ...ck.checkpoint, identity: "other" } }, toy().trainee),
        /made with other options/,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("loop: an aborted signal stops at a step boundary and the run resumes exactly", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const straight = toy();
    const full = await trainLoop(base, straight.trainee);
    const path = `${dir}/ck.safetensors`;
    const ck = { ...base, checkpoint: { path, every: 1, identity: "toy" } };
    const stop = new AbortController();
    const a = toy();
    // Abort from inside step 5 (as Ctrl-C lands mid-step): step 5 completes and is saved,
    // step 6 never starts.
    const step = a.trainee.step;
    const aborting: typeof a.trainee = {
      ...a.trainee,
      step: (s) => {
        if (s.step === 5) stop.abort(new Error("interrupted"));
        return step(s);
      },
    };
    await assert.rejects(trainLoop({ ...ck, signal: stop.signal }, aborting), /interrupted/);
    const b = toy();
    const rest = await trainLoop(ck, b.trainee);
    assert.equal(rest.history.length, 12);
    assert.deepEqual(rest.history, full.history);
    assert.deepEqual(b.x, straight.x);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("loop: a failing step writes nothing of itself", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/ck.safetensors`;
    const t = toy({ failAt: 0 });
    await assert.rejects(trainLoop({ ...base, checkpoint: { path } }, t.trainee), /bad step 0/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    const u = toy({ failAt: 5 });
    await assert.rejects(trainLoop({ ...base, checkpoint: { path } }, u.trainee), /bad step 5/);
    const r = await trainLoop({ ...base, checkpoint: { path }, stopAfter: 0 }, toy().trainee);
    assert.equal(r.stepsDone, 5, "resumes after the last good step");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
