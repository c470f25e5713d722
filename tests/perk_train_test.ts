/**
 * The meta-training loop on the toy LoRA decoder: the outer loss falls, an interrupted run
 * resumes to exactly the parameters of an uninterrupted one, and a non-finite loss stops with
 * the step and problem named without writing a poisoned checkpoint.
 */
import { testRuntime } from "./testing.ts";
import { TOY, toyLM, toyProblem } from "./perk_gpu_toy.ts";
import { type MetaState, metaTrain } from "../pipeline/perk/train.ts";
import { initWeighting, weightingShapes } from "../pipeline/perk/weighting.ts";
import { readSafetensors } from "../pipeline/model/safetensors.ts";

const rt = await testRuntime();
const N = 2;

async function setup(lrInit = 1e-2) {
  const lm = toyLM(rt);
  const theta0 = await Promise.all(lm.lora.map((t) => rt.readF32(t)));
  const init: MetaState = {
    theta0,
    lr: new Float32Array(N * theta0.length).fill(lrInit),
    phi: initWeighting(TOY.dim, 3),
  };
  const shapes = { theta0: lm.lora.map((t) => [...t.shape]), phi: weightingShapes(TOY.dim) };
  // A learnable regularity: every problem's target is the same 3 tokens.
  const mk = (i: number) => ({
    ...toyProblem(100 + i),
    target: Int32Array.from([3, 5, 7]),
    id: `p${i}`,
  });
  const train = [0, 1, 2, 3].map(mk), val = [10, 11].map(mk);
  return { lm, init, shapes, train, val };
}

Deno.test("meta-training lowers the outer loss", async () => {
  const { lm, init, shapes, train, val } = await setup();
  const r = await metaTrain(lm, init, shapes, train, val, {
    steps: N,
    retained: N,
    epochs: 6,
    patience: 100,
    seed: 1,
    outer: { lr: 1e-2, warmupFraction: 0 },
  });
  const byEpoch = [0, 1, 2, 3, 4, 5].map((e) =>
    (r.history.filter((h) => h.epoch === e).reduce((s, h) => s + h.loss, 0) / 4).toFixed(3)
  );
  console.log(`  mean outer loss per epoch: ${byEpoch.join(" → ")}`);
  const first = r.history.slice(0, 4).reduce((s, h) => s + h.loss, 0) / 4;
  const last = r.history.slice(-4).reduce((s, h) => s + h.loss, 0) / 4;
  console.log(
    `  outer loss: first epoch ${first.toFixed(4)} → last epoch ${last.toFixed(4)}; best val ${
      r.bestValLoss.toFixed(4)
    }`,
  );
  if (!(last < 0.8 * first)) throw new Error(`loss did not fall: ${first} → ${last}`);
  lm.dispose();
});

Deno.test("an interrupted meta-training run resumes to the same parameters", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const opts = { steps: N, retained: 1, epochs: 2, patience: 100, seed: 2, outer: { lr: 1e-2 } };
    const a = await setup();
    const full = await metaTrain(a.lm, a.init, a.shapes, a.train, a.val, opts);
    a.lm.dispose();
    const b = await setup();
    const ck = `${dir}/ck.safetensors`;
    const part = await metaTrain(b.lm, b.init, b.shapes, b.train, b.val, {
      ...opts,
      checkpoint: ck,
      stopAfter: 3,
    });
    if (part.finished || part.stepsDone !== 3) {
      throw new Error(`expected an interrupted run, got ${part.stepsDone}`);
    }
    const resumed = await metaTrain(b.lm, b.init, b.shapes, b.train, b.val, {
      ...opts,
      checkpoint: ck,
    });
    b.lm.dispose();
    if (resumed.stepsDone !== full.stepsDone) {
      throw new Error(`steps ${resumed.stepsDone} ≠ ${full.stepsDone}`);
    }
    const flat = (s: MetaState) => [...s.theta0, s.lr, ...s.phi];
    flat(full.best).forEach((x, i) => {
      const y = flat(resumed.best)[i];
      for (let j = 0; j < x.length; j++) {
        if (x[j] !== y[j]) throw new Error(`meta-parameter ${i}[${j}]: ${y[j]} ≠ ${x[j]}`);
      }
    });
    if (resumed.history.length !== full.history.length) throw new Error("history lengths differ");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a non-finite loss stops with step and problem named; no poisoned checkpoint", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { lm, init, shapes, train, val } = await setup(1e30);
    const ck = `${dir}/ck.safetensors`;
    let msg = "";
    try {
      await metaTrain(lm, init, shapes, train, val, {
        steps: N,
        retained: N,
        epochs: 1,
        patience: 5,
        seed: 3,
        checkpoint: ck,
      });
    } catch (e) {
      msg = (e as Error).message;
    }
    lm.dispose();
    if (!/non-finite .* at (outer )?step 0/.test(msg) || !/problem p\d/.test(msg)) {
      throw new Error(`unexpected error: "${msg}"`);
    }
    let wrote = true;
    try {
      readSafetensors(ck);
    } catch {
      wrote = false;
    }
    if (wrote) throw new Error("a checkpoint was written for a poisoned step");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("learned rates: log steps them multiplicatively and keeps them positive; raw steps them additively", async () => {
  // Adam's first step moves each parameter by ±its learning rate (m̂/√v̂ = sign g), so one
  // outer step scales every rate by exp(∓η) under "log" and shifts it by ∓η under "raw" —
  // in the same direction, since d/du f(exp u) = f'(lr)·lr has the sign of f'(lr).
  const eta = 0.5, lr0 = 1e-2;
  const run = async (lrParam: "log" | "raw", rates: number) => {
    const s = await setup(lr0);
    const r = await metaTrain(s.lm, s.init, s.shapes, s.train.slice(0, 1), [], {
      steps: N,
      retained: N,
      epochs: 1,
      patience: 100,
      seed: 4,
      outer: { lr: 1e-3, warmupFraction: 0, weightDecay: 0 },
      groupLr: { rates },
      lrParam,
    });
    s.lm.dispose();
    return r;
  };
  const log = (await run("log", eta)).best.lr;
  const raw = (await run("raw", 0.3 * lr0)).best.lr;
  let moved = 0;
  log.forEach((x, i) => {
    // |step| is η·|m̂|/(√v̂ + ε): just under η where a gradient is tiny next to ε.
    const step = Math.log(x / lr0), up = step > 0;
    if (!(x > 0) || !(Math.abs(step) > 0.9 * eta && Math.abs(step) <= eta * (1 + 1e-5))) {
      throw new Error(`log rate ${i}: ${x} (log step ${step})`);
    }
    const d = raw[i] - lr0;
    if (!(Math.abs(d) > 0.27 * lr0 && Math.abs(d) <= 0.3 * lr0 * (1 + 1e-5)) || (d > 0) !== up) {
      throw new Error(`raw rate ${i}: ${raw[i]} against log ${x}`);
    }
    moved++;
  });
  if (moved !== log.length || moved < N * 2) throw new Error(`checked ${moved} of ${log.length}`);
  // A raw step larger than the rate drives some rates negative; log never can.
  const big = (await run("raw", 3 * lr0)).best.lr;
  if (!big.some((x) => x < 0)) throw new Error("raw rates stayed positive under a large step");
});

Deno.test("log-parameterised rates refuse a non-positive initial rate", async () => {
  const s = await setup(0);
  let msg = "";
  try {
    await metaTrain(s.lm, s.init, s.shapes, s.train, s.val, {
      steps: N,
      retained: N,
      epochs: 1,
      patience: 1,
      seed: 0,
    });
  } catch (e) {
    msg = (e as Error).message;
  }
  s.lm.dispose();
  if (!/inner_lr > 0 or lr_param raw/.test(msg)) throw new Error(`got: ${msg}`);
});
