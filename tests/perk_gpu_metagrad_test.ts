/**
 * PERK on the GPU, end to end on a toy LoRA decoder: the meta-gradient (θ₀, learned rates,
 * weighting model) against central differences of the whole outer loss with the inner loop
 * inside, for full unrolling (T = N) and truncation (T < N: the differences are taken with
 * the truncated steps' gradients held fixed — exactly the TGU objective); K-way gradient
 * accumulation at encoding equals the full batch; memory does not grow with T.
 */
import { assertClose, randn, testRuntime } from "./testing.ts";
import { TOY, toyLM, toyProblem } from "./perk_gpu_toy.ts";
import type { Tensor } from "../kernels/runtime/tensor.ts";
import { encodeContext, type MetaParams, perkMetaGradient } from "../pipeline/perk/meta_step.ts";
import { innerLoop, type InnerObjective } from "../pipeline/perk/metagrad.ts";
import { gpuBackend } from "../pipeline/perk/metagrad_gpu.ts";
import { innerBatch, outerBatch } from "../pipeline/perk/batch.ts";
import { innerObjective, outerObjective, uploadTargets } from "../pipeline/perk/objectives.ts";
import { weightingShapes, type WeightsFrom } from "../pipeline/perk/weighting.ts";
import { accumulateInto } from "../kernels/optim/accumulate.ts";

const rt = await testRuntime();
const N = 3;
// Adam's first steps are ≈ lr·sign(g): with eps 1e-8 a finite-difference step that flips the
// sign of a tiny gradient entry jumps the loss. A larger eps keeps the objective smooth at the
// step sizes fp32 differences need; the exact sweep is the same code for any eps.
const ADAM = { beta1: 0.9, beta2: 0.95, eps: 1e-2, weightDecay: 0.01 };

function metaParams(lm: ReturnType<typeof toyLM>, lrValue: number): MetaParams {
  const J = lm.lora.length;
  const phi = weightingShapes(TOY.dim).map((s, i) =>
    rt.keep(rt.tensor(randn(s.reduce((a, b) => a * b, 1), 300 + i, -0.5, 0.5), s))
  );
  const lr = rt.keep(
    rt.tensor(Float32Array.from({ length: N * J }, (_, i) => lrValue * (1 + 0.1 * (i % 3))), [
      N * J,
    ]),
  );
  return { theta0: lm.lora, lr, phi };
}

interface Toy {
  lm: ReturnType<typeof toyLM>;
  problem: ReturnType<typeof toyProblem>;
  mp: MetaParams;
}
/**
 * fn on a fresh toy LM, toyProblem(seed, segs) and meta-parameters at inner rate lrValue,
 * inside one pool scope; the LM is released after.
 */
async function onToy<R>(
  seed: number,
  segs: number | undefined,
  lrValue: number,
  fn: (t: Toy) => Promise<R>,
): Promise<R> {
  return await rt.scopeAsync(async () => {
    const lm = toyLM(rt);
    const problem = toyProblem(seed, segs);
    const mp = metaParams(lm, lrValue);
    const r = await fn({ lm, problem, mp });
    lm.dispose();
    return r;
  });
}

/** Outer loss after the inner loop; steps n < frozenBelow replay the recorded gradients. */
async function outerAfterInner(
  lm: ReturnType<typeof toyLM>,
  problem: ReturnType<typeof toyProblem>,
  mp: MetaParams,
  frozen: Tensor[][] | undefined,
  frozenBelow: number,
  record?: Tensor[][],
): Promise<number> {
  const inB = innerBatch(problem), outB = outerBatch(problem);
  const inT = uploadTargets(rt, inB), outT = uploadTargets(rt, outB);
  // The weighting model's input: the base's hidden states (a constant), or the adapted model's.
  const h = mp.weightsFrom === "base" ? rt.keep(rt.scope(() => lm.baseHidden(inB))) : undefined;
  const base = innerObjective(lm, inB, inT, mp.phi, undefined, h);
  const inner: InnerObjective<Tensor, Tensor[]> = {
    grad: async (th, n) => {
      if (frozen && n < frozenBelow) {
        return frozen[n].map((g) => {
          const c = rt.keep(rt.zeros(g.shape));
          return accumulateInto(c, g);
        });
      }
      const g = await base.grad(th, n);
      record?.push(g.map((x) => {
        const c = rt.keep(rt.zeros(x.shape));
        return accumulateInto(c, x);
      }));
      return g;
    },
    hvp: base.hvp,
  };
  const tr = await innerLoop(
    gpuBackend(mp.lr, undefined, mp.theta0.length, ADAM),
    inner,
    [...mp.theta0],
    N,
  );
  const { loss, grad } = await outerObjective(lm, outB, outT).valueAndGrad(tr.thetas[N]);
  grad.forEach((g) => g.dispose());
  inT.dispose();
  outT.dispose();
  h?.dispose();
  return loss;
}

async function perturbed(
  mp: MetaParams,
  group: "theta0" | "phi" | "lr",
  dir: Float32Array[] | { index: number },
  eps: number,
): Promise<MetaParams> {
  const shift = async (ts: readonly Tensor[], d: Float32Array[]) =>
    await Promise.all(ts.map(async (t, i) => {
      const h = await rt.readF32(t);
      return rt.keep(rt.tensor(h.map((v, j) => v + eps * d[i][j]), t.shape));
    }));
  if (group === "lr") {
    const h = await rt.readF32(mp.lr);
    const i = (dir as { index: number }).index;
    const c = Float32Array.from(h);
    c[i] += eps;
    return { ...mp, lr: rt.keep(rt.tensor(c, mp.lr.shape)) };
  }
  if (group === "theta0") return { ...mp, theta0: await shift(mp.theta0, dir as Float32Array[]) };
  return { ...mp, phi: await shift(mp.phi, dir as Float32Array[]) };
}

const CASES: { T: number; weightsFrom: WeightsFrom }[] = [
  ...[N, 2, 1].map((T) => ({ T, weightsFrom: "adapted" as const })),
  ...[N, 1].map((T) => ({ T, weightsFrom: "base" as const })),
];
for (const { T, weightsFrom } of CASES) {
  Deno.test(`PERK meta-gradient (N=${N}, T=${T}, weights read the ${weightsFrom} model) matches finite differences of the outer loss`, async () => {
    await onToy(11, undefined, 2e-2, async ({ lm, problem, mp: mp0 }) => {
      const mp: MetaParams = { ...mp0, weightsFrom };
      const mg = await perkMetaGradient(lm, problem, mp, { steps: N, retained: T, adam: ADAM });
      // Recorded gradients of the unperturbed run (for the truncated steps).
      const rec: Tensor[][] = [];
      const loss0 = await outerAfterInner(lm, problem, mp, undefined, 0, rec);
      assertClose([mg.loss], [loss0], { rtol: 1e-5, label: "outer loss" });
      const frozenBelow = N - T;
      const L = (m: MetaParams) => outerAfterInner(lm, problem, m, rec, frozenBelow);
      const report: string[] = [];
      const check = async (group: "theta0" | "phi", grads: Tensor[], eps: number) => {
        const dirs = grads.map((g, i) => randn(g.size, 700 + i));
        const got = (await Promise.all(grads.map((g) => rt.readF32(g)))).reduce(
          (s, g, i) => s + g.reduce((a, v, j) => a + v * dirs[i][j], 0),
          0,
        );
        const fd = ((await L(await perturbed(mp, group, dirs, eps))) -
          (await L(await perturbed(mp, group, dirs, -eps)))) / (2 * eps);
        report.push(`${group}: ${got.toExponential(4)} vs fd ${fd.toExponential(4)}`);
        if (Deno.env.get("PERK_FD_DEBUG")) {
          for (const e2 of [eps * 4, eps / 4]) {
            const f2 = ((await L(await perturbed(mp, group, dirs, e2))) -
              (await L(await perturbed(mp, group, dirs, -e2)))) / (2 * e2);
            console.log(`  ${group} T=${T} eps ${e2}: fd ${f2} (exact ${got})`);
          }
        }
        assertClose([got], [fd], { rtol: 1e-2, atol: 1e-5, label: `${group} (T=${T})` });
      };
      await check("theta0", mg.theta0, 1e-3);
      await check("phi", mg.phi, 1e-3);
      const lrG = await rt.readF32(mg.lr);
      for (const index of [0, lm.lora.length * (N - 1) + 3]) {
        const e = 6e-3; // 30% of the rate: the loss moves ~1e-5, well above fp32 noise
        const fd = ((await L(await perturbed(mp, "lr", { index }, e))) -
          (await L(await perturbed(mp, "lr", { index }, -e)))) / (2 * e);
        report.push(`lr[${index}]: ${lrG[index].toExponential(4)} vs fd ${fd.toExponential(4)}`);
        assertClose([lrG[index]], [fd], { rtol: 1e-2, atol: 1e-5, label: `lr[${index}] (T=${T})` });
      }
      console.log(`  ${report.join("; ")}`);
    });
  });
}

Deno.test("encoding with K-way gradient accumulation equals the full batch", async () => {
  await onToy(12, 5, 1e-2, async ({ lm, problem, mp }) => {
    const full = await encodeContext(lm, problem, mp, { steps: 2, groups: 1 });
    const acc = await encodeContext(lm, problem, mp, { steps: 2, groups: 3 });
    for (let i = 0; i < full.length; i++) {
      assertClose(await rt.readF32(acc[i]), await rt.readF32(full[i]), {
        rtol: 1e-4,
        atol: 1e-6,
        label: `adapted LoRA ${i}`,
      });
    }
  });
});

for (const weightsFrom of ["adapted", "base"] as const) {
  Deno.test(`meta-gradient with K-way accumulation equals the full batch (θ₀, rates, φ; weights read the ${weightsFrom} model)`, async () => {
    await onToy(13, 5, 1e-2, async ({ lm, problem, mp: mp0 }) => {
      const mp: MetaParams = { ...mp0, weightsFrom };
      const o = { steps: N, retained: 2, adam: ADAM };
      const full = await perkMetaGradient(lm, problem, mp, { ...o, groups: 1 });
      const acc = await perkMetaGradient(lm, problem, mp, { ...o, groups: 3 });
      assertClose([acc.loss], [full.loss], { rtol: 1e-6, label: "outer loss" });
      const pairs: [Tensor, Tensor, string][] = [
        ...full.theta0.map((t, i): [Tensor, Tensor, string] => [acc.theta0[i], t, `θ₀ ${i}`]),
        ...full.phi.map((t, i): [Tensor, Tensor, string] => [acc.phi[i], t, `φ ${i}`]),
        [acc.lr, full.lr, "rates"],
      ];
      for (const [a, b, label] of pairs) {
        const want = await rt.readF32(b);
        const scale = Math.max(...want.map(Math.abs));
        assertClose(await rt.readF32(a), want, { rtol: 1e-3, atol: 1e-5 * scale, label });
      }
    });
  });
}

Deno.test("meta-gradient memory does not grow with retained steps (T=N ≤ 1.2 × T=1)", async () => {
  // The pool's peak only grows, so reading it before the LM is released reads the same.
  const peak = (T: number) =>
    onToy(13, 4, 1e-2, async ({ lm, problem, mp }) => {
      await rt.sync();
      const base = rt.pool.inUse;
      rt.pool.resetPeak();
      await perkMetaGradient(lm, problem, mp, { steps: 4, retained: T });
      await rt.sync();
      return rt.pool.peak - base;
    });
  const p1 = await peak(1), p4 = await peak(4);
  console.log(`  peak pool bytes: T=1 ${p1}, T=4 ${p4} (${(p4 / p1).toFixed(2)}×)`);
  if (!(p4 <= 1.2 * p1)) throw new Error(`T=4 peak ${p4} > 1.2 × T=1 peak ${p1}`);
});
