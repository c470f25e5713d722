/**
 * The flash family of the fused attention kernels (kernels/ops/attention/flash.ts), forced
 * through `family: "flash"` on this machine's adapter (on GPUs it is "auto"'s choice):
 *  - every kernel (forward, forward tangent, backward with and without gL, backward tangent
 *    with all tangents and with a subset) against its float64 reference, on shapes that
 *    cross the 64-row workgroups and the staged tiles at odd places: T = 1, 7, 65, 130,
 *    D = 3, 8, 12, 64, causal / not, segments, GQA / MQA, S ≠ T (and causal S < T, whose
 *    first rows see no key);
 *  - that the flash pipelines really ran (a flash dispatch per kernel launch), and that a
 *    kernel whose tile row does not fit the workgroup memory falls back to plain (checked
 *    with its result);
 *  - the family choice: flash for "auto" on GPUs, the CPU families on CPU adapters.
 */
import * as AK from "../kernels/ops/attention/mod.ts";
import { flashRows } from "../kernels/ops/attention/flash.ts";
import type { A } from "./f64.ts";
import { rng, testRuntime } from "./testing.ts";
import { type AttnCfg, attnData, attnRef, closeTo, kernelsVsRef } from "./attention_fixtures.ts";

const rt = await testRuntime();

/** (B, T) segment ids in runs of random length 1..maxRun. */
function segRuns(B: number, T: number, maxRun: number, seed: number): Int32Array {
  const r = rng(seed), out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let id = 0, left = 0;
    for (let t = 0; t < T; t++) {
      if (left-- <= 0) {
        id = Math.floor(r() * 5);
        left = Math.floor(r() * maxRun);
      }
      out[b * T + t] = id;
    }
  }
  return out;
}

/** c with segment ids over its (B, T) in runs of 1..maxRun. */
const segmented = (c: AttnCfg, maxRun: number, seed: number): AttnCfg => ({
  ...c,
  seg: segRuns(c.B, c.T, maxRun, seed),
});
const cfgs: AttnCfg[] = [
  { name: "T1 D8 MQA non-causal S5", B: 2, H: 2, Hkv: 1, T: 1, S: 5, D: 8, causal: false },
  { name: "T1 D3 causal S9 (decode)", B: 1, H: 3, Hkv: 3, T: 1, S: 9, D: 3, causal: true },
  segmented(
    { name: "T7 D12 GQA causal+seg", B: 2, H: 4, Hkv: 2, T: 7, S: 7, D: 12, causal: true },
    4,
    1,
  ),
  { name: "T7 D64 causal S140 (S>T)", B: 1, H: 2, Hkv: 1, T: 7, S: 140, D: 64, causal: true },
  { name: "T65 D64 GQA causal", B: 1, H: 4, Hkv: 2, T: 65, S: 65, D: 64, causal: true },
  segmented(
    { name: "T65 D3 MQA seg non-causal", B: 2, H: 2, Hkv: 1, T: 65, S: 65, D: 3, causal: false },
    30,
    2,
  ),
  { name: "T130 D8 MQA causal", B: 1, H: 3, Hkv: 1, T: 130, S: 130, D: 8, causal: true },
  {
    name: "T130 D12 causal S70 (S<T, empty rows)",
    B: 1,
    H: 2,
    Hkv: 1,
    T: 130,
    S: 70,
    D: 12,
    causal: true,
  },
  { name: "T130 D12 GQA non-causal S33", B: 2, H: 4, Hkv: 2, T: 130, S: 33, D: 12, causal: false },
  segmented(
    { name: "T130 D64 GQA causal+seg", B: 1, H: 4, Hkv: 2, T: 130, S: 130, D: 64, causal: true },
    50,
    3,
  ),
];

for (const [ci, c] of cfgs.entries()) {
  Deno.test(`flash attention kernels vs float64 reference: ${c.name}`, async () => {
    const flashRuns = { count: 0 }, texelRuns = { count: 0 };
    const launches = await kernelsVsRef(rt, c, 10 + ci * 20, {
      family: "flash",
      flashRuns,
      texelRuns,
    });
    if (flashRuns.count !== launches) {
      throw new Error(`${flashRuns.count} of ${launches} kernel launches ran flash pipelines`);
    }
    if (texelRuns.count > 0) throw new Error(`flash ran ${texelRuns.count} texel kernels`);
  });
}

Deno.test("flash attention: tile rows per kernel fit the 16 KiB workgroup memory", () => {
  for (const D of [1, 3, 8, 12, 64, 128, 256, 1020]) {
    for (const [arrays, col] of [[2, false], [2, true], [4, false], [4, true]] as const) {
      const n = flashRows(arrays, D, col);
      const bytes = n * (arrays * D * 4 + (col ? 16 : 0));
      if (!(n >= 1 && n <= 32 && bytes <= 16384)) {
        throw new Error(`D ${D}, ${arrays} arrays, col ${col}: ${n} rows = ${bytes} B`);
      }
    }
  }
  if (flashRows(4, 1028, false) !== 0 || flashRows(4, 1024, true) !== 0) {
    throw new Error("a tile row over 16 KiB must give no flash variant");
  }
  if (flashRows(2, 64, false) !== 32) throw new Error("the D 64 forward should take 32 keys");
});

Deno.test("flash attention: a kernel whose tile does not fit falls back to plain (D 1028)", async () => {
  // The forward's two staged arrays fit at D = 1028 (one key per tile); the forward
  // tangent's four do not. (Only these two: lavapipe compiles the other D 1028 kernels slowly.)
  const c: AttnCfg = { name: "D1028", B: 1, H: 2, Hkv: 1, T: 3, S: 5, D: 1028, causal: true };
  const { x, t } = attnData(c, 7), R = attnRef(c), flashRuns = { count: 0 };
  const o: AK.AttnKernelOptions = { family: "flash", flashRuns };
  await rt.scopeAsync(async () => {
    const up = (a: A, shape: number[]) => rt.tensor(Float32Array.from(a), shape);
    const qs = [c.B, c.H, c.T, c.D], ks = [c.B, c.Hkv, c.S, c.D];
    const q = up(x.q, qs), k = up(x.k, ks), v = up(x.v, ks);
    const m: AK.AttnMask = { causal: c.causal, scale: R.scale };
    const [O, L] = AK.attentionForward(q, k, v, m, o);
    closeTo(await rt.readF32(O), x.O, "forward O");
    closeTo(await rt.readF32(L), x.L, "forward L");
    if (flashRuns.count !== 1) throw new Error(`forward: ${flashRuns.count} flash launches`);
    const [od] = AK.attentionForwardTangent(q, k, v, O, L, { dv: up(t.dv, ks) }, m, o);
    const z = (a: A) => new Float64Array(a.length);
    const [rOd] = AK.attentionForwardTangent64(R, x.q, x.k, x.v, z(t.dq), z(t.dk), t.dv);
    closeTo(await rt.readF32(od), rOd, "forward tangent Ȯ (plain fallback)");
    if (flashRuns.count !== 1) throw new Error("the forward tangent ran flash at D 1028");
  });
});

Deno.test("flash attention: family choice (auto = flash on GPUs, CPU families on CPU adapters)", () => {
  const gpu = { isCpuAdapter: false, hasSubgroups: true, subgroupSize: 32 };
  const gpu8 = { isCpuAdapter: false, hasSubgroups: true, subgroupSize: 8 };
  const cpu8 = { isCpuAdapter: true, hasSubgroups: true, subgroupSize: 8 };
  const cpu = { isCpuAdapter: true, hasSubgroups: false, subgroupSize: 0 };
  const want: [AK.AdapterTraits, AK.AttnFamily, string][] = [
    [gpu, "auto", "flash"],
    [gpu8, "auto", "flash"],
    [cpu8, "auto", "texture"],
    [cpu, "auto", "plain"],
    [gpu, "plain", "plain"],
    [cpu8, "flash", "flash"],
    [gpu8, "subgroup", "subgroup"],
    [cpu8, "texture", "texture"],
  ];
  for (const [a, f, w] of want) {
    const got = AK.familyFor(a, f);
    if (got !== w) throw new Error(`${JSON.stringify(a)} ${f}: ${got}, expected ${w}`);
  }
  let threw = false;
  try {
    AK.familyFor(gpu, "subgroup");
  } catch {
    threw = true;
  }
  if (!threw) throw new Error("subgroup family on a 32-lane adapter should throw");
  // This machine's own adapter.
  const here = AK.familyFor(rt, "auto");
  if (rt.isCpuAdapter === (here === "flash")) {
    throw new Error(`auto on ${rt.isCpuAdapter ? "a CPU" : "a GPU"} adapter chose ${here}`);
  }
});
