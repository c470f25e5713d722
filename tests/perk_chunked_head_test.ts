/**
 * PERK's losses read per-token NLLs from the model (PerkLM.nll), whose head and cross-entropy
 * run in row chunks (GpuModel.nll: each chunk's logits fit one bindable buffer, so a segment
 * of any vocabulary fits lavapipe's 128 MiB bindings). Chunking must not change the maths: the
 * meta-gradient (θ₀, learned rates, weighting model) of a real GpuModel with the head forced
 * into chunks of 50 rows equals the one-chunk computation, and so does test-time encoding; and a
 * meta-step runs with Qwen2's 151,936-id vocabulary, whose one-segment logits (288 rows,
 * 175 MB) exceed lavapipe's largest binding (before the chunked head it threw).
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { profileConfig } from "../pipeline/base/pretrain.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { defaultLoraConfig, initLora } from "../pipeline/model/lora.ts";
import { encodeProblem } from "../pipeline/perk/encode_problem.ts";
import { perkLM } from "../pipeline/perk/lm_adapter.ts";
import { encodeContext, type MetaParams, perkMetaGradient } from "../pipeline/perk/meta_step.ts";
import { weightingShapes } from "../pipeline/perk/weighting.ts";

const rt = await testRuntime();
const N = 2;

Deno.test("PERK's meta-gradient and encoding with the head in row chunks = one chunk", async () => {
  const vocab = tinyVocab();
  const config = profileConfig("micro", vocab.size);
  const model = GpuModel.upload(rt, { config, weights: initRandomWeights(config, 3) });
  const lora = initLora(config, defaultLoraConfig(config, { rank: 4, alpha: 8, seed: 2 }));
  const [p] = generateProblems({
    dataset: "babilong",
    task: "qa1",
    length: "256",
    split: "test",
    n: 1,
    seed: 3,
  });
  const problem = encodeProblem(new CompactTokenizer(vocab), p, undefined, "answer");
  const J = lora.specs.length;
  // B nonzero (initLora leaves it 0), so every path of the meta-gradient carries signal.
  const theta = lora.specs.map((s, j) => randn(s.size, 40 + j, -0.05, 0.05));
  const mp = (): MetaParams => ({
    theta0: lora.specs.map((s, j) => rt.keep(rt.tensor(theta[j], [...s.shape]))),
    lr: rt.keep(rt.tensor(new Float32Array(N * J).fill(2e-3), [N * J])),
    phi: weightingShapes(config.dim).map((s, i) =>
      rt.keep(rt.tensor(randn(s.reduce((a, b) => a * b, 1), 60 + i, -0.3, 0.3), s))
    ),
  });
  const free = (m: MetaParams) => [...m.theta0, m.lr, ...m.phi].forEach((t) => t.dispose());
  const rows = problem.segments[0].length;
  const results: { loss: number; grads: Float32Array[]; encoded: Float32Array[] }[] = [];
  for (const headRows of [undefined, 50]) {
    const lm = perkLM(model, lora.specs, lora.scale, 0, headRows);
    const m = mp();
    const g = await perkMetaGradient(lm, problem, m, { steps: N, retained: N });
    const grads = [];
    for (const t of [...g.theta0, g.lr, ...g.phi]) grads.push(await rt.readF32(t));
    [...g.theta0, g.lr, ...g.phi].forEach((t) => t.dispose());
    const adapted = await encodeContext(lm, problem, m, { steps: N });
    const encoded = [];
    for (const t of adapted) encoded.push(await rt.readF32(t));
    adapted.forEach((t) => t.dispose());
    free(m);
    results.push({ loss: g.loss, grads, encoded });
  }
  if (rows <= 100) throw new Error(`the segment (${rows} rows) must span several 50-row chunks`);
  const [one, chunked] = results;
  assertClose([chunked.loss], [one.loss], { rtol: 1e-6, atol: 0, label: "outer loss" });
  one.grads.forEach((g, i) =>
    assertClose(chunked.grads[i], g, { rtol: 1e-4, atol: 1e-7, label: `meta-gradient ${i}` })
  );
  one.encoded.forEach((g, i) =>
    assertClose(chunked.encoded[i], g, { rtol: 1e-5, atol: 1e-7, label: `encoded θ ${i}` })
  );
  // The meta-gradient is not trivially zero (the comparison means something).
  const norm = one.grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0);
  if (!(norm > 0)) throw new Error("meta-gradient is zero");
  model.dispose();
});

Deno.test("a PERK meta-step with Qwen2's vocabulary (one segment's logits wider than a binding)", async () => {
  const config = profileConfig("micro", 151936);
  const model = GpuModel.upload(rt, { config, weights: initRandomWeights(config, 1) });
  const lora = initLora(config, defaultLoraConfig(config, { rank: 4, alpha: 8, seed: 1 }));
  const lm = perkLM(model, lora.specs, lora.scale, 0);
  const J = lora.specs.length;
  const seg = Int32Array.from({ length: 287 }, (_, i) => (i * 7919) % config.vocab);
  const problem = {
    segments: [seg],
    prefixLengths: [0],
    prompt: Int32Array.from([5, 6, 7]),
    target: Int32Array.from([150_000, 9]),
  };
  const m: MetaParams = {
    theta0: lora.specs.map((s, j) =>
      rt.keep(rt.tensor(randn(s.size, 80 + j, -0.05, 0.05), [...s.shape]))
    ),
    lr: rt.keep(rt.tensor(new Float32Array(N * J).fill(1e-3), [N * J])),
    phi: weightingShapes(config.dim).map((s, i) =>
      rt.keep(rt.tensor(randn(s.reduce((a, b) => a * b, 1), 90 + i, -0.3, 0.3), s))
    ),
  };
  const g = await perkMetaGradient(lm, problem, m, { steps: N, retained: 1 });
  // Random weights: the outer loss is about ln V, and the rates' meta-gradient is finite.
  if (!(Math.abs(g.loss - Math.log(config.vocab)) < 3)) {
    throw new Error(`outer loss ${g.loss}, expected near ln ${config.vocab}`);
  }
  const lr = await rt.readF32(g.lr);
  if (!lr.every(Number.isFinite) || !lr.some((x) => x !== 0)) {
    throw new Error(`rate meta-gradient ${lr.slice(0, 4)}…`);
  }
  [...g.theta0, g.lr, ...g.phi, ...m.theta0, m.lr, ...m.phi].forEach((t) => t.dispose());
  model.dispose();
});
