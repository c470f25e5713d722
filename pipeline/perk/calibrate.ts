/**
 * Calibration for time estimates: how fast this machine's adapter runs PERK's unit of work —
 * one inner step per context token on the shipped tiny base — against the reference host's
 * figure (pipeline/experiment/cost.ts: UNIT.innerStepMsPerToken). Measured once per adapter
 * (a warm-up, then a timed encode of 1,024 tokens), kept in `<cache>/calibration.json`.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import { UNIT } from "../experiment/cost.ts";
import { GpuModel } from "../model/gpu_model.ts";
import { resolveBase, TINY_BASE } from "../base/base_stage.ts";
import { perkLM } from "./lm_adapter.ts";
import { encodeContext } from "./meta_step.ts";
import { loraFor } from "./stages.ts";
import { initWeighting, weightingShapes } from "./weighting.ts";

/** This adapter's speed: the reference host's time over this machine's (2 = twice as fast). */
export interface Calibration {
  readonly adapter: string;
  readonly innerStepMsPerToken: number;
  readonly speed: number;
  readonly measured: string;
}

/** ms per token of one inner step on `rt` (tiny base, rank 16, 4 segments of 256 tokens). */
export async function measureInnerStep(rt: Runtime): Promise<number> {
  const base = resolveBase({ path: TINY_BASE.dir });
  const lora = loraFor(base, { rank: 16, lora_alpha: 16, dropout: 0, seed: 0 });
  const model = GpuModel.upload(rt, base);
  const steps = 2, rows = 4, len = 256;
  const segments = Array.from(
    { length: rows },
    (_, r) => Int32Array.from({ length: len }, (_, t) => 10 + ((r * 131 + t * 17) % 3000)),
  );
  const problem = {
    segments,
    prefixLengths: segments.map(() => 3),
    prompt: new Int32Array(0),
    target: new Int32Array(0),
  };
  const phi = initWeighting(base.config.dim, 17), phiShapes = weightingShapes(base.config.dim);
  const mp = {
    theta0: lora.specs.map((s) =>
      rt.keep(rt.tensor(lora.data.slice(s.offset, s.offset + s.size), [...s.shape]))
    ),
    lr: rt.keep(rt.tensor(new Float32Array(steps * lora.specs.length).fill(3e-3), [
      steps * lora.specs.length,
    ])),
    phi: phi.map((x, k) => rt.keep(rt.tensor(x, [...phiShapes[k]]))),
  };
  const lm = perkLM(model, lora.specs, lora.scale, 0);
  const once = async () => {
    const t0 = performance.now();
    const out = await encodeContext(lm, problem, mp, { steps });
    await rt.readF32(out[0]);
    out.forEach((t) => t.dispose());
    return performance.now() - t0;
  };
  try {
    await once(); // pipelines compile here
    const ms = Math.min(await once(), await once());
    return ms / (rows * len * steps);
  } finally {
    [...mp.theta0, mp.lr, ...mp.phi].forEach((t) => t.dispose());
    model.dispose();
  }
}

/** The cached calibration of `adapter`, or a new one measured now (and cached). */
export async function calibration(
  rt: Runtime,
  adapter: string,
  file: string,
  log: (line: string) => void = () => {},
  again = false,
): Promise<Calibration> {
  let all: Record<string, Calibration> = {};
  try {
    all = JSON.parse(Deno.readTextFileSync(file));
  } catch { /* none yet */ }
  const hit = all[adapter];
  if (hit && hit.innerStepMsPerToken > 0 && !again) return hit;
  log("calibrating this adapter for time estimates (once; about a minute on a 2-core CPU)…");
  const ms = await measureInnerStep(rt);
  const c: Calibration = {
    adapter,
    innerStepMsPerToken: ms,
    speed: UNIT.calibrationMsPerToken / ms,
    measured: new Date().toISOString(),
  };
  try {
    Deno.mkdirSync(file.replace(/\/[^/]*$/, ""), { recursive: true });
    const tmp = `${file}.tmp-${Deno.pid}`;
    Deno.writeTextFileSync(tmp, JSON.stringify({ ...all, [adapter]: c }, null, 1));
    Deno.renameSync(tmp, file);
  } catch { /* the cache only saves the next measurement */ }
  return c;
}
