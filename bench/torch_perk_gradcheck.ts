/**
 * One PERK meta-gradient on the shipped base (QA1 training problem 0 at 256 tokens, PEFT's
 * LoRA init, constant rate 3e-3, N = 4, T = 1, answer target), written with everything needed
 * to recompute it in the PyTorch prototype:
 *   deno run -A bench/torch_perk_gradcheck.ts OUT.json
 *   /usr/bin/python3 bench/torch_perk.py gradcheck OUT.json
 * (2026-12-06: θ₀ gradients agree to 1.9e-3 relative, rate gradients to 3.5e-3.)
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { loadModel, loadTokenizerFor } from "../pipeline/model/load.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { defaultLoraConfig, initLora } from "../pipeline/model/lora.ts";
import { encodeProblem } from "../pipeline/perk/encode_problem.ts";
import { perkLM } from "../pipeline/perk/lm_adapter.ts";
import { perkMetaGradient } from "../pipeline/perk/meta_step.ts";
import { initWeighting, weightingShapes } from "../pipeline/perk/weighting.ts";
import { TINY_BASE } from "../pipeline/base/base_stage.ts";
const rt = await createRuntime();
const base = loadModel(TINY_BASE.dir);
const tok = loadTokenizerFor(TINY_BASE.dir, base);
const model = GpuModel.upload(rt, base);
const lora = initLora(
  base.config,
  defaultLoraConfig(base.config, { rank: 16, alpha: 16, dropout: 0, seed: 0 }),
);
const lm = perkLM(model, lora.specs, lora.scale, 0);
const [p] = generateProblems({
  dataset: "babilong",
  task: "qa1",
  length: "256",
  split: "train",
  n: 1,
  seed: 0,
});
const e = encodeProblem(tok, p, tok.eosId, "answer");
const J = lora.specs.length, N = 4;
const mp = {
  theta0: lora.specs.map((s) =>
    rt.keep(rt.tensor(lora.data.slice(s.offset, s.offset + s.size), [...s.shape]))
  ),
  lr: rt.keep(rt.tensor(new Float32Array(N * J).fill(3e-3), [N * J])),
  phi: initWeighting(base.config.dim, 17).map((x, i) =>
    rt.keep(rt.tensor(x, weightingShapes(base.config.dim)[i]))
  ),
};
const mg = await perkMetaGradient(lm, e, mp, { steps: N, retained: 1 });
const outPath = Deno.args[0] ?? ".torch_perk/gradcheck.json";
const out = {
  names: lora.specs.map((s) => s.name),
  shapes: lora.specs.map((s) => s.shape),
  theta0: lora.specs.map((s) => Array.from(lora.data.slice(s.offset, s.offset + s.size))),
  g_theta0: await Promise.all(mg.theta0.map(async (t) => Array.from(await rt.readF32(t)))),
  g_lr: Array.from(await rt.readF32(mg.lr)),
  loss: mg.loss,
  scale: lora.scale,
  steps: N,
  retained: 1,
  lr: 3e-3,
  eos: tok.eosId,
  segments: e.segments.map((s) => Array.from(s)),
  prefix: e.prefixLengths,
  prompt: Array.from(e.prompt),
  target: Array.from(e.target),
};
Deno.writeTextFileSync(outPath, JSON.stringify(out));
console.log(`wrote ${outPath} (outer loss ${mg.loss})`);
