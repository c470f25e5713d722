/**
 * FT-ICR training on the GPU (fixture models, synthetic token problems): the answer-only
 * loss equals GpuModel.loss with every target −1 except the answers' (values and gradients,
 * LoRA and full fine-tuning, tied and untied heads); an interrupted run resumes to exactly
 * the uninterrupted result; early stopping; a non-finite loss stops with a clear error and
 * writes nothing; a checkpoint from other options is refused.
 */
import assert from "node:assert/strict";
import { grad } from "../kernels/autodiff/transforms.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { answerBatch, answerLoss } from "../pipeline/baselines/answer_loss.ts";
import type { IcrExample } from "../pipeline/baselines/in_context.ts";
import { extendPositions } from "../pipeline/baselines/positions.ts";
import { type FtIcrOptions, ftIcrTrain } from "../pipeline/baselines/ft_icr/train.ts";
import { type Trainable, trainable } from "../pipeline/baselines/ft_icr/trainable.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { loadHfModel } from "../pipeline/model/hf_loader.ts";
import type { Model } from "../pipeline/model/weights.ts";
import { assertClose, rng, testRuntime } from "./testing.ts";

const rt = await testRuntime();
const fixture = (arch: string): Model =>
  loadHfModel(new URL(`../fixtures/models/tiny-${arch}`, import.meta.url).pathname);

/** Synthetic problems: random prompts; the answer copies two prompt tokens, then EOS 0. */
function problems(n: number, seed: number, vocab: number): IcrExample[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const P = 6 + Math.floor(r() * 10);
    const prompt = Int32Array.from({ length: P }, () => 1 + Math.floor(r() * (vocab - 1)));
    return { id: `p${seed}/${i}`, prompt, answer: Int32Array.from([prompt[1], prompt[3], 0]) };
  });
}

const lora = { kind: "lora" as const, rank: 4, alpha: 8, dropout: 0, seed: 3 };

/** Trained values nudged off their init (LoRA B = 0 would make most gradients vanish). */
function nudged(t: Trainable, seed: number): Tensor[] {
  const r = rng(seed);
  return t.init.map((x, i) =>
    rt.keep(rt.tensor(x.map((v) => v + 0.05 * (r() - 0.5)), t.shapes[i]))
  );
}

// gpt2: learned positions, tied head, fused qkv LoRA; llama: RoPE, untied head, full weights.
for (const [arch, kind] of [["gpt2", "lora"], ["llama", "full"]]) {
  Deno.test(`answer loss = GpuModel.loss on the answer tokens (${arch}, ${kind}): value and gradient`, async () => {
    const base = fixture(arch);
    const model = GpuModel.upload(rt, base);
    const t = trainable(base, kind === "lora" ? lora : { kind: "full" });
    const params = nudged(t, 5);
    try {
      const b = answerBatch(problems(2, 11, base.config.vocab));
      assert.equal(b.len % 16, 0);
      const targets = new Int32Array(b.rows * b.len).fill(-1);
      let k = 0;
      for (const [start, n] of b.spans) {
        for (let j = 0; j < n; j++) targets[start + j] = b.targets[k++];
      }
      const ours = rt.scope(() =>
        grad((...xs) => answerLoss(model, b, t.options(xs, false)), params)
      );
      const ref = rt.scope(() =>
        grad(
          (...xs) =>
            model.loss(b.ids, {
              ...t.options(xs, false),
              batch: b.rows,
              targets,
              denominator: b.targets.length,
            }),
          params,
        )
      );
      const [v1, v2] = await Promise.all([rt.readF32(ours.value), rt.readF32(ref.value)]);
      assertClose(v1, v2, { rtol: 1e-5, label: "loss" });
      for (let i = 0; i < params.length; i++) {
        const [g1, g2] = await Promise.all([rt.readF32(ours.grads[i]), rt.readF32(ref.grads[i])]);
        assertClose(g1, g2, { rtol: 1e-3, atol: 1e-6, label: `∂${t.names[i]}` });
      }
      [ours.value, ref.value, ...ours.grads, ...ref.grads].forEach((x) => x.dispose());
    } finally {
      params.forEach((x) => x.dispose());
      model.dispose();
    }
  });
}

Deno.test("answer loss runs past the learned positions after interpolation", async () => {
  const base = fixture("gpt2"); // 48 learned positions
  const long: IcrExample = {
    id: "long",
    prompt: Int32Array.from({ length: 60 }, (_, i) => 1 + (i % 60)),
    answer: Int32Array.from([5, 0]),
  };
  const b = answerBatch([long]);
  const tooLong = GpuModel.upload(rt, base);
  assert.throws(
    () => rt.scope(() => answerLoss(tooLong, b)),
    /position 48 is outside the model's 48 positions/,
  );
  tooLong.dispose();
  const ext = extendPositions(base, b.len, { type: "none" }, "test");
  const model = GpuModel.upload(rt, ext.model);
  const l = rt.keep(rt.scope(() => answerLoss(model, b)));
  assert.ok(Number.isFinite((await rt.readF32(l))[0]));
  l.dispose();
  model.dispose();
});

const OPTS: FtIcrOptions = {
  lr: 3e-3,
  epochs: 2,
  patience: 10,
  seed: 7,
  batch: 2,
  evalsPerEpoch: 2,
};

async function train(base: Model, o: Partial<FtIcrOptions>, t = trainable(base, lora)) {
  const model = GpuModel.upload(rt, base);
  try {
    const v = base.config.vocab;
    return await ftIcrTrain(model, t, problems(5, 1, v), problems(3, 2, v), { ...OPTS, ...o });
  } finally {
    model.dispose();
  }
}

Deno.test("FT-ICR training: an interrupted run resumes to exactly the uninterrupted result", async () => {
  const base = fixture("llama");
  const dir = await Deno.makeTempDir({ prefix: "ft-icr-" });
  const straight = await train(base, { checkpoint: `${dir}/a.safetensors` });
  assert.equal(straight.totalSteps, 6); // 2 epochs × ⌈5 / 2⌉
  assert.ok(straight.finished);
  const losses = straight.history.map((r) => r.loss);
  assert.ok(losses.at(-1)! < losses[0], `loss ${losses[0]} → ${losses.at(-1)}`);
  assert.ok(straight.history.filter((r) => r.valLoss !== undefined).length >= 3);

  const ck = `${dir}/b.safetensors`;
  const first = await train(base, { checkpoint: ck, stopAfter: 4 });
  assert.equal(first.stepsDone, 4); // mid-epoch, after a validation check
  assert.ok(!first.finished);
  const second = await train(base, { checkpoint: ck });
  assert.ok(second.finished);
  assert.deepEqual(second.history, straight.history);
  assert.equal(second.bestStep, straight.bestStep);
  straight.best.forEach((x, i) => assert.deepEqual(second.best[i], x, `tensor ${i}`));

  await assert.rejects(
    () => train(base, { checkpoint: ck, lr: 1e-2 }),
    /made with other options, parameters or problems; delete it to start over/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("FT-ICR training: early stopping when the validation loss stops improving", async () => {
  // A learning rate far below float32 resolution leaves the parameters, and so the
  // validation loss, unchanged: every check after the first fails to improve.
  const r = await train(fixture("llama"), { lr: 1e-30, epochs: 20, patience: 2 });
  const checks = r.history.filter((x) => x.valLoss !== undefined);
  assert.equal(checks.length, 3);
  assert.ok(r.finished);
  assert.equal(r.stepsDone, 3); // a check every step (⌈5 / 2⌉ = 3 steps, 2 checks per epoch)
  assert.equal(r.bestStep, 1);
});

Deno.test("FT-ICR training: a non-finite loss stops with a clear error and writes nothing", async () => {
  const base = fixture("llama");
  const weights = new Map(base.weights);
  const w = weights.get("layers.0.q.weight")!;
  weights.set("layers.0.q.weight", { shape: w.shape, data: w.data.map(() => NaN) });
  const dir = await Deno.makeTempDir({ prefix: "ft-icr-" });
  await assert.rejects(
    () => train({ config: base.config, weights }, { checkpoint: `${dir}/c.safetensors` }),
    /ft-icr-train: non-finite loss \(loss NaN, gradient norm NaN\) at step 1 \(problems p1\/\d, p1\/\d\); nothing of this step was written/,
  );
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});
