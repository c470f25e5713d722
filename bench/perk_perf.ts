/**
 * PERK efficiency figures on the tiny default model (random weights: timing does not depend
 * on what the weights learned), LoRA rank 16 on every linear, N = 4 inner steps:
 *  - metatrain_1k_T{0..4}_ms / _peak_bytes: one meta-training step (inner loop, outer loss,
 *    TGU meta-gradient) on a 1K-token BabiLong problem, median of PERK_PERF_RUNS (3) after
 *    one untimed run that compiles the pipelines;
 *  - metatrain_1k_T2_{dispatches,submits,waits}: the runtime's counters for one such step
 *    (waits: the host blocked on the device, the result read included);
 *  - metatrain_256_cpu_T1_ms: the same on the cpu profile's model (dim 128) and a 256-token
 *    problem, N = 4, T = 1: the step the cpu profile's meta-training runs hundreds of times;
 *  - encode_1k_K1_dispatches: test-time encoding of a 1K problem (N = 4, K = 1), dispatches;
 *  - encode_{8k,32k,128k}_K{k}_ms / _peak_bytes: test-time encoding (N = 4 steps, K-way
 *    gradient accumulation over the segments), one run, after one untimed 1K encode per
 *    process that compiles the pipelines (they do not depend on the length);
 *  - torch_metatrain_1k_T{2,4}_ms / _peak_bytes: the same meta-step in PyTorch (Debian's
 *    python3-torch, one thread, bench/torch_metatrain.py), and the time ratios (ours ÷ torch).
 *    Skipped with a message when /usr/bin/python3 has no torch. Peak bytes there are the
 *    process's max RSS; ours are the GPU pool's peak above the resident model.
 */
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { profileConfig } from "../pipeline/base/pretrain.ts";
import { initRandomWeights } from "../pipeline/model/weights.ts";
import { GpuModel } from "../pipeline/model/gpu_model.ts";
import { defaultLoraConfig, initLora } from "../pipeline/model/lora.ts";
import { encodeProblem, type IdProblem } from "../pipeline/perk/encode_problem.ts";
import { perkLM } from "../pipeline/perk/lm_adapter.ts";
import { encodeContext, type MetaParams, perkMetaGradient } from "../pipeline/perk/meta_step.ts";
import { initWeighting, weightingShapes } from "../pipeline/perk/weighting.ts";
import type { PerfCase } from "./perf_case.ts";

const N = 4, RANK = 16;
const results = new Map<string, number>();

function setup(rt: Runtime, profile: "tiny" | "cpu" = "tiny") {
  const vocab = tinyVocab();
  const tok = new CompactTokenizer(vocab);
  const config = profileConfig(profile, vocab.size);
  const model = GpuModel.upload(rt, { config, weights: initRandomWeights(config, 1) });
  const lora = initLora(config, defaultLoraConfig(config, { rank: RANK, alpha: 16, seed: 1 }));
  const lm = perkLM(model, lora.specs, lora.scale, 0.1);
  const J = lora.specs.length;
  const mp = (): MetaParams => ({
    theta0: lora.specs.map((s) =>
      rt.keep(rt.tensor(lora.data.slice(s.offset, s.offset + s.size), [...s.shape]))
    ),
    lr: rt.keep(rt.tensor(new Float32Array(N * J).fill(5e-5), [N * J])),
    phi: initWeighting(config.dim, 3).map((x, i) =>
      rt.keep(rt.tensor(x, weightingShapes(config.dim)[i]))
    ),
  });
  const problem = (length: string): IdProblem => {
    const [p] = generateProblems({
      dataset: "babilong",
      task: "qa1",
      length,
      split: "test",
      n: 1,
      seed: 7,
    });
    return encodeProblem(tok, p);
  };
  return { config, model, lm, mp, problem };
}

const free = (m: MetaParams) => [...m.theta0, m.lr, ...m.phi].forEach((t) => t.dispose());

/** Timed runs per meta-step case (after one untimed run that compiles); env PERK_PERF_RUNS. */
const RUNS = Number(Deno.env.get("PERK_PERF_RUNS") ?? 3);
let shared: ReturnType<typeof setup> | undefined;
let sharedCpu: ReturnType<typeof setup> | undefined;

type Counter = "dispatches" | "submits" | "waits";
const COUNTERS: readonly Counter[] = ["dispatches", "submits", "waits"];

/** One meta-step case; `key` names its results (`metatrain_1k_T2`, `metatrain_256_cpu_T1`). */
async function measureMeta(
  rt: Runtime,
  T: number,
  key = `metatrain_1k_T${T}`,
  profile: "tiny" | "cpu" = "tiny",
  length = "1k",
): Promise<void> {
  if (results.has(`${key}_ms`)) return;
  const s = profile === "tiny" ? (shared ??= setup(rt)) : (sharedCpu ??= setup(rt, profile));
  const p = s.problem(length);
  const times: number[] = [];
  let peak = 0;
  for (let r = 0; r <= RUNS; r++) {
    const mp = s.mp();
    await rt.sync();
    const before = rt.pool.inUse;
    const stats = { ...rt.stats };
    rt.pool.resetPeak();
    const t0 = performance.now();
    const g = await perkMetaGradient(s.lm, p, mp, { steps: N, retained: T, dropoutSeed: 1 });
    await Promise.all([g.lr].map((t) => rt.readF32(t)));
    if (r > 0) times.push(performance.now() - t0); // the first run compiles pipelines
    for (const c of COUNTERS) results.set(`${key}_${c}`, rt.stats[c] - stats[c]);
    peak = Math.max(peak, rt.pool.peak - before);
    [...g.theta0, g.lr, ...g.phi].forEach((t) => t.dispose());
    free(mp);
  }
  times.sort((a, b) => a - b);
  results.set(`${key}_ms`, times[Math.floor(times.length / 2)]);
  results.set(`${key}_peak_bytes`, peak);
}

let encodeWarm = false;
async function encodeCase(rt: Runtime, length: string, K: number): Promise<void> {
  const s = shared ??= setup(rt);
  if (!encodeWarm) {
    const w = s.mp();
    const out = await encodeContext(s.lm, s.problem("1k"), w, { steps: N, groups: 2 });
    await rt.readF32(out[0]);
    out.forEach((t) => t.dispose());
    free(w);
    encodeWarm = true;
  }
  const p = s.problem(length);
  const mp = s.mp();
  await rt.sync();
  const before = rt.pool.inUse;
  const dispatches = rt.stats.dispatches;
  rt.pool.resetPeak();
  const t0 = performance.now();
  const adapted = await encodeContext(s.lm, p, mp, { steps: N, groups: K });
  await rt.readF32(adapted[0]);
  results.set(`encode_${length}_K${K}_ms`, performance.now() - t0);
  results.set(`encode_${length}_K${K}_dispatches`, rt.stats.dispatches - dispatches);
  results.set(`encode_${length}_K${K}_peak_bytes`, rt.pool.peak - before);
  adapted.forEach((t) => t.dispose());
  free(mp);
}

async function torchCase(T: number): Promise<void> {
  if (results.has(`torch_metatrain_1k_T${T}_ms`)) return;
  const probe = new Deno.Command("/usr/bin/python3", { args: ["-c", "import torch"] });
  let ok = false;
  try {
    ok = (await probe.output()).success;
  } catch { /* no python */ }
  if (!ok) {
    console.error(
      "# torch cases skipped: /usr/bin/python3 has no torch (apt-get install python3-torch)",
    );
    results.set(`torch_metatrain_1k_T${T}_ms`, NaN);
    return;
  }
  const vocab = tinyVocab();
  const c = profileConfig("tiny", vocab.size);
  const cfg = {
    vocab: c.vocab,
    dim: c.dim,
    layers: c.layers,
    heads: c.heads,
    kv_heads: c.kvHeads,
    ffn: c.hidden,
  };
  const cfgFile = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(cfgFile, JSON.stringify(cfg));
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      new URL("./torch_metatrain.py", import.meta.url).pathname,
      "--config",
      cfgFile,
      "--rank",
      String(RANK),
      "--steps",
      String(N),
      "--retained",
      String(T),
    ],
    env: { OMP_NUM_THREADS: "1" },
  }).output();
  await Deno.remove(cfgFile);
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    console.error(
      `# torch_metatrain.py failed: ${new TextDecoder().decode(out.stderr).slice(-400)}`,
    );
  }
  for (const m of text.matchAll(/^PERF (\S+) (\S+) /gm)) results.set(m[1], Number(m[2]));
}

const meta = (T: number, what: "ms" | "peak_bytes"): PerfCase => ({
  name: `metatrain_1k_T${T}_${what}`,
  unit: what === "ms" ? "ms" : "bytes",
  run: async (rt) => {
    await measureMeta(rt, T);
    return results.get(`metatrain_1k_T${T}_${what}`)!;
  },
});
const counter = (T: number, what: Counter): PerfCase => ({
  name: `metatrain_1k_T${T}_${what}`,
  unit: "count",
  run: async (rt) => {
    await measureMeta(rt, T);
    return results.get(`metatrain_1k_T${T}_${what}`)!;
  },
});
const cpuMeta: PerfCase = {
  name: "metatrain_256_cpu_T1_ms",
  unit: "ms",
  run: async (rt) => {
    await measureMeta(rt, 1, "metatrain_256_cpu_T1", "cpu", "256");
    return results.get("metatrain_256_cpu_T1_ms")!;
  },
};
const enc = (length: string, K: number, what: "ms" | "peak_bytes" | "dispatches"): PerfCase => ({
  name: `encode_${length}_K${K}_${what}`,
  unit: what === "ms" ? "ms" : what === "dispatches" ? "count" : "bytes",
  run: async (rt) => {
    if (!results.has(`encode_${length}_K${K}_ms`)) await encodeCase(rt, length, K);
    return results.get(`encode_${length}_K${K}_${what}`)!;
  },
});
const torch = (T: number, what: "ms" | "peak_bytes"): PerfCase => ({
  name: `torch_metatrain_1k_T${T}_${what}`,
  unit: what === "ms" ? "ms" : "bytes",
  run: async () => {
    await torchCase(T);
    return results.get(`torch_metatrain_1k_T${T}_${what}`) ?? NaN;
  },
});
const ratio = (T: number): PerfCase => ({
  name: `ratio_metatrain_T${T}_time_vs_torch`,
  unit: "x",
  run: async (rt) => {
    await measureMeta(rt, T);
    await torchCase(T);
    return results.get(`metatrain_1k_T${T}_ms`)! /
      (results.get(`torch_metatrain_1k_T${T}_ms`) ?? NaN);
  },
});

export const cases: PerfCase[] = [
  ...[0, 1, 2, 3, 4].flatMap((T) => [meta(T, "ms"), meta(T, "peak_bytes")]),
  ...COUNTERS.map((c) => counter(2, c)),
  cpuMeta,
  enc("1k", 1, "dispatches"),
  ...([["8k", 1], ["8k", 16], ["32k", 4], ["128k", 16]] as const).flatMap((
    [l, K],
  ) => [enc(l, K, "ms"), enc(l, K, "peak_bytes")]),
  torch(2, "ms"),
  torch(2, "peak_bytes"),
  torch(4, "ms"),
  torch(4, "peak_bytes"),
  ratio(2),
  ratio(4),
];
