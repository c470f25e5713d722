/**
 * Pretraining on a micro profile (a few steps, seconds): the loss goes down on the training
 * and the held-out batches; the run is deterministic; an interrupted run resumed from its
 * checkpoint ends bit-for-bit where an uninterrupted one does. Batches are fixed by
 * (seed, step) and hold real text.
 */
import assert from "node:assert/strict";
import { pretrain, type PretrainOptions, pretrainSchedule } from "../pipeline/base/pretrain.ts";
import { PRETRAIN_DEFAULTS } from "../pipeline/base/pretrain.ts";
import { lrAt } from "../pipeline/train/schedule.ts";
import { pretrainData } from "../pipeline/base/pretrain_data.ts";
import { EOS_ID } from "../pipeline/tokenizer/compact_vocab.ts";
import { saveHfModel } from "../pipeline/model/hf_loader.ts";
import { pretrainCurriculum } from "../pipeline/base/pretrain_curriculum.ts";
import { testRuntime } from "./testing.ts";

const rt = await testRuntime();
/** Pretraining's learning rate at a 0-based step (the shared schedule, pretraining's sizing). */
const pretrainLr = (o: PretrainOptions, step: number) => lrAt(pretrainSchedule(o), step);
const opts: Partial<PretrainOptions> = {
  profile: "micro",
  steps: 14,
  rows: 4,
  seqLen: 32,
  lr: 1e-2,
  warmupSteps: 2,
  evalRows: 4,
  seed: 3,
};

Deno.test("pretrain: batches are fixed by (seed, step), mix task text and prose", () => {
  const d = pretrainData({ seqLen: 32, taskFraction: 0.5, corpus: "sotu", heldOut: 0.05 });
  const a = d.batch(1, 0, 8), b = d.batch(1, 0, 8), c = d.batch(1, 1, 8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.notDeepEqual(d.batch(1, "eval", 8), a);
  const text = Array.from(
    { length: 8 },
    (_, r) => d.tok.decode([...a.subarray(r * 32, r * 32 + 32)]),
  );
  console.log(`  e.g. ${JSON.stringify(text[0].slice(0, 80))}`);
  assert.ok(text.every((t) => t.length > 40 && !t.includes("<unk>")), "real text, no unknowns");
  assert.ok(a.includes(EOS_ID) || text.some((t) => /[a-z]+ [a-z]+/.test(t)));
  // Schedule: warm-up to the peak, cosine down to minLrRatio·lr at the last step.
  const o = { ...PRETRAIN_DEFAULTS, steps: 10, warmupSteps: 2, lr: 1, minLrRatio: 0.1 };
  assert.deepEqual([pretrainLr(o, 0), pretrainLr(o, 1), pretrainLr(o, 2)], [0.5, 1, 1]);
  assert.ok(Math.abs(pretrainLr(o, 9) - 0.1) < 1e-12);
});

Deno.test("pretrain: micro profile learns; deterministic; resumes bit-for-bit", async () => {
  const a = await pretrain(rt, opts);
  const head = a.losses.slice(0, 3).reduce((x, y) => x + y) / 3;
  const tail = a.losses.slice(-3).reduce((x, y) => x + y) / 3;
  console.log(
    `  train loss ${head.toFixed(3)} → ${tail.toFixed(3)}, held-out ${
      a.evalLossStart.toFixed(3)
    } → ${a.evalLossEnd.toFixed(3)}, ${a.tokensPerSecond.toFixed(0)} tok/s`,
  );
  assert.equal(a.losses.length, 14);
  assert.ok(
    tail < head - 0.5,
    `training loss did not go down: ${a.losses.map((x) => x.toFixed(2))}`,
  );
  assert.ok(a.evalLossEnd < a.evalLossStart - 0.3, "held-out loss did not go down");
  assert.equal(a.tokens, 14 * 4 * 32);
  // Interrupt after 5 steps (checkpoint every 2 → resumes from step 4), then resume.
  const dir = Deno.makeTempDirSync();
  const ck = { ...opts, checkpoint: { dir, every: 2 } };
  await assert.rejects(
    pretrain(rt, ck, (p) => {
      if (p.step === 5) throw new Error("interrupted");
    }),
    /interrupted/,
  );
  const b = await pretrain(rt, ck);
  assert.deepEqual(b.losses, a.losses);
  for (const [name, t] of a.weights) {
    assert.deepEqual(b.weights.get(name)!.data, t.data, `weight ${name} after resuming`);
  }
  await assert.rejects(pretrain(rt, { ...ck, seed: 4 }), /made with other options/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("pretrain: init continues from a saved base; a base of another profile is refused", async () => {
  const first = await pretrain(rt, { ...opts, steps: 7 });
  const dir = Deno.makeTempDirSync();
  saveHfModel(dir, { config: first.config, weights: first.weights });
  // Same data (seed) from step 0 again: started from the trained base, the first losses are
  // those of a model that has seen it, far below a fresh start's.
  const next = await pretrain(rt, { ...opts, steps: 3, init: dir });
  console.log(
    `  first step's loss: fresh ${first.losses[0].toFixed(3)}, from the base ${
      next.losses[0].toFixed(3)
    } (the base's last: ${first.losses[6].toFixed(3)})`,
  );
  assert.ok(next.losses[0] < first.losses[0] - 0.5, "init's weights were not used");
  // With a vanishing learning rate the result is the base itself.
  const still = await pretrain(rt, { ...opts, steps: 1, lr: 1e-12, weightDecay: 0, init: dir });
  for (const [name, t] of first.weights) {
    const u = still.weights.get(name)!.data;
    assert.ok(
      t.data.every((x, i) => Math.abs(x - u[i]) < 1e-6),
      `weight ${name} is not the base's`,
    );
  }
  // Interrupted and resumed from its checkpoint, it ends where it did, even if `init` now
  // names another directory (a curriculum's stages start from fresh temporary ones).
  const ck = Deno.makeTempDirSync(), copy = Deno.makeTempDirSync();
  for (const e of Deno.readDirSync(dir)) Deno.copyFileSync(`${dir}/${e.name}`, `${copy}/${e.name}`);
  const withCk = { ...opts, steps: 3, checkpoint: { dir: ck, every: 1 } };
  await assert.rejects(
    pretrain(rt, { ...withCk, init: dir }, (p) => {
      if (p.step === 2) throw new Error("interrupted");
    }),
    /interrupted/,
  );
  assert.deepEqual((await pretrain(rt, { ...withCk, init: copy })).losses, next.losses);
  for (const d of [ck, copy]) Deno.removeSync(d, { recursive: true });
  await assert.rejects(
    pretrain(rt, { ...opts, profile: "cpu", steps: 1, init: dir }),
    /is not a cpu-profile model \(config differs in dim: 32 vs 128/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("pretrain curriculum: each stage starts where the one before ended", async () => {
  const stages = [{ ...opts, steps: 4 }, { ...opts, steps: 3, lr: 5e-3, seqLen: 48 }];
  const [a, b] = await pretrainCurriculum(rt, stages);
  // By hand: the first stage, saved, then the second from it.
  const first = await pretrain(rt, stages[0]);
  const dir = Deno.makeTempDirSync();
  saveHfModel(dir, { config: first.config, weights: first.weights });
  const second = await pretrain(rt, { ...stages[1], init: dir });
  Deno.removeSync(dir, { recursive: true });
  assert.deepEqual(a.losses, first.losses);
  assert.deepEqual(b.losses, second.losses);
  for (const [name, t] of second.weights) assert.deepEqual(b.weights.get(name)!.data, t.data, name);
  await assert.rejects(
    pretrainCurriculum(rt, [stages[0], { ...stages[1], init: "/elsewhere" }]),
    /stage 2 sets init \(\/elsewhere\); only the first may/,
  );
});
