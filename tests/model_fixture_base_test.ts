/**
 * The shipped tiny base (fixtures/models/tiny-base): its weights are the ones whose hash the
 * experiments check, and the float64 reference reproduces the loss PyTorch measured when it
 * exported them (bench/torch_perk.py export: mean NLL of four in-context QA windows built
 * from validation problems, f16 weights) — so the layout (transposes, RoPE halves, tied
 * head) is read exactly as it was trained.
 */
import assert from "node:assert/strict";
import { generateProblems } from "../pipeline/data/problems.ts";
import { sha256File, TINY_BASE } from "../pipeline/base/base_stage.ts";
import { loadModel, loadTokenizerFor } from "../pipeline/model/load.ts";
import { forward, tokenNll } from "../pipeline/model/reference.ts";
import { encodeProblem } from "../pipeline/perk/encode_problem.ts";

/** What `bench/torch_perk.py export` printed for the shipped weights. */
const TORCH_NLL = 3.5256;

Deno.test("fixture base: hash matches the experiments' check", async () => {
  assert.equal(await sha256File(`${TINY_BASE.dir}/model.safetensors`), TINY_BASE.sha256);
});

Deno.test("fixture base: the reference forward reproduces PyTorch's loss", () => {
  const model = loadModel(TINY_BASE.dir);
  const tok = loadTokenizerFor(TINY_BASE.dir, model);
  assert.equal(model.config.dim, 128);
  const problems = generateProblems({
    dataset: "babilong",
    task: "qa1",
    length: "256",
    split: "validation",
    n: 4,
    seed: 0,
  });
  let total = 0, count = 0;
  for (const p of problems) {
    const e = encodeProblem(tok, p, tok.eosId, "answer");
    let ids = [...e.segments.flatMap((s) => [...s]), ...e.prompt, ...e.target];
    ids = ids.length > 256 ? ids.slice(-256) : [...ids, ...Array(256 - ids.length).fill(tok.eosId)];
    const r = forward(model, ids.slice(0, -1));
    const nll = tokenNll(r.logits, model.config.vocab, ids.slice(1));
    total += nll.reduce((a, b) => a + b, 0);
    count += nll.length;
  }
  const nll = total / count;
  assert.ok(Math.abs(nll - TORCH_NLL) < 1e-3, `reference NLL ${nll} vs PyTorch ${TORCH_NLL}`);
});
