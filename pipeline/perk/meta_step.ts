/**
 * One problem's PERK on the GPU: the meta-gradient (meta-training) and test-time encoding.
 * Meta-parameters: θ₀ (LoRA initial values), lr (N × tensors learned learning rates, on the
 * GPU), φ (weighting model). The sweep is metagrad.ts's, with the GPU AdamW kernels.
 * θ₀ is packed into one buffer first (kernels/optim/packed.ts), so every per-step LoRA state
 * (θ_n, m, v, g, adjoints) is one buffer too and the optimizer's kernels run once per step
 * over all tensors; returned LoRA tensors are views of such buffers (dispose each).
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import { accumulateInto } from "../../kernels/optim/accumulate.ts";
import { layoutOf, packedZeros, toPacked, unpack } from "../../kernels/optim/packed.ts";
import { innerLoop, type InnerObjective, metaGradient } from "./metagrad.ts";
import { gpuBackend } from "./metagrad_gpu.ts";
import type { AdamWHyper } from "../../kernels/optim/adamw_math.ts";
import { type EncodedProblem, innerBatch, outerBatch } from "./batch.ts";
import { innerObjective, outerObjective, type PerkLM, uploadTargets } from "./objectives.ts";
import type { WeightsFrom } from "./weighting.ts";

/**
 * Logits one accumulation group may hold (bytes): a memory bound — the tape keeps every head
 * chunk's logits for the backward pass. Not a binding limit: the head runs in row chunks that
 * each fit one binding (PerkLM.nll), so even a single segment of a wide vocabulary works.
 */
export const LOGITS_BUDGET = 96 * 1024 * 1024;

export interface MetaParams {
  readonly theta0: readonly Tensor[];
  /** (steps · tensors) learning rates, row-major by step. */
  readonly lr: Tensor;
  readonly phi: readonly Tensor[];
  /** The hidden states the weighting model reads (weighting.ts); default "adapted". */
  readonly weightsFrom?: WeightsFrom;
}

export interface PerkOptions {
  /** Inner steps N. */
  readonly steps: number;
  /** Retained (unrolled) steps T ≤ N. */
  readonly retained: number;
  /** Cut the parameter path of truncated steps too (the paper's formula). */
  readonly cut?: boolean;
  /** LoRA dropout seed base (undefined: no dropout). Step n uses base + n. */
  readonly dropoutSeed?: number;
  /** Segment order (training shuffles it); default: as given. */
  readonly order?: readonly number[];
  /**
   * Accumulation groups K over the segments (at least what keeps a group's logits within one
   * binding: large vocabularies on long contexts); the sum is the full batch's exact value.
   */
  readonly groups?: number;
  /** Inner AdamW hyper-parameters (default: perk-method §2). */
  readonly adam?: AdamWHyper;
}

export interface MetaGradient {
  readonly loss: number;
  readonly theta0: Tensor[];
  readonly lr: Tensor;
  readonly phi: Tensor[];
}

/** Outer loss and exact (TGU-truncated) meta-gradient for one problem. Caller owns results. */
export async function perkMetaGradient(
  lm: PerkLM,
  problem: EncodedProblem,
  mp: MetaParams,
  o: PerkOptions,
): Promise<MetaGradient> {
  const rt = lm.rt;
  const outB = outerBatch(problem);
  const outT = uploadTargets(rt, outB);
  const lrBar = rt.keep(rt.zeros(mp.lr.shape));
  const be = gpuBackend(mp.lr, lrBar, mp.theta0.length, o.adam);
  const theta0 = packed(mp.theta0);
  const seedOf = (n: number) => (o.dropoutSeed === undefined ? undefined : o.dropoutSeed + n);
  const inner = groupedInner(lm, problem, mp.phi, seedOf, {
    groups: o.groups,
    order: o.order,
    weightsFrom: mp.weightsFrom,
  });
  const outer = outerObjective(
    lm,
    outB,
    outT,
    o.dropoutSeed === undefined ? undefined : o.dropoutSeed + o.steps,
  );
  try {
    const r = await metaGradient(be, inner, outer, theta0, {
      steps: o.steps,
      retained: o.retained,
      cut: o.cut,
    });
    releaseTrajectory(r.trajectory);
    const phi = r.phi ?? mp.phi.map((p) => rt.keep(rt.zeros(p.shape)));
    return { loss: r.loss, theta0: r.theta0, lr: lrBar, phi };
  } catch (e) {
    theta0.forEach((t) => t.dispose()); // ours (the sweep's other state is lost with it)
    throw e;
  } finally {
    inner.dispose();
    outT.dispose();
  }
}

/**
 * The inner objective over K groups of a problem's segments (in `order`), summed: each group's
 * loss is normalised by the full batch's rows·(len−1), so the sum of the groups' gradients and
 * Hessian-vector products is exactly the full batch's. K is raised until a group's logits
 * (rows·len, vocab) fit one storage binding (128 MiB on lavapipe). With `weightsFrom` "base"
 * each group's base hidden states are computed once here and read by every inner step.
 */
export function groupedInner(
  lm: PerkLM,
  problem: EncodedProblem,
  phi: readonly Tensor[],
  seedOf: (n: number) => number | undefined,
  { groups = 1, order, weightsFrom = "adapted" }: {
    readonly groups?: number;
    readonly order?: readonly number[];
    readonly weightsFrom?: WeightsFrom;
  } = {},
): InnerObjective<Tensor, Tensor[]> & {
  readonly groups: number;
  dispose(): void;
  onGroup?: (n: number, g: number) => void;
} {
  const rt = lm.rt;
  const idx = order ?? problem.segments.map((_, i) => i);
  const n = idx.length;
  const full = innerBatch(problem, idx);
  const budget = Math.min(LOGITS_BUDGET, rt.maxBindingBytes);
  const minK = lm.vocab ? Math.ceil((full.rows * full.len * lm.vocab * 4) / budget) : 1;
  const K = Math.max(1, Math.min(Math.max(groups, minK), n));
  const parts = Array.from({ length: K }, (_, g) => {
    const b = innerBatch(problem, idx.filter((_, i) => i % K === g));
    const t = uploadTargets(rt, b);
    const h = weightsFrom === "base" ? rt.keep(rt.scope(() => lm.baseHidden(b))) : undefined;
    return {
      t,
      h,
      obj: innerObjective(lm, b, t, phi, seedOf, h),
      norm: (b.rows * (b.len - 1)) / (full.rows * (full.len - 1)),
    };
  });
  // Σ_g norm_g · list_g, one dispatch per group over the packed set (packed.ts).
  const sum = (lists: Tensor[][]) => {
    if (lists.length === 1 && parts[0].norm === 1) return lists[0];
    const layout = layoutOf(lists[0]);
    const total = packedZeros(rt, layout);
    lists.forEach((list, g) => {
      const flat = toPacked(list, layout);
      accumulateInto(total, flat, parts[g].norm);
      flat.dispose();
      list.forEach((p) => p.dispose());
    });
    return unpack(total, layout).map((t) => rt.keep(t));
  };
  const self = {
    groups: K,
    onGroup: undefined as ((n: number, g: number) => void) | undefined,
    grad: async (theta: Tensor[], step: number) => {
      const lists: Tensor[][] = [];
      for (let g = 0; g < K; g++) {
        lists.push(await parts[g].obj.grad(theta, step));
        self.onGroup?.(step, g);
      }
      return sum(lists);
    },
    hvp: async (theta: Tensor[], v: Tensor[], step: number) => {
      const th: Tensor[][] = [], ph: Tensor[][] = [];
      for (let g = 0; g < K; g++) {
        const r = await parts[g].obj.hvp(theta, v, step);
        th.push(r.theta);
        ph.push(r.phi);
      }
      return { theta: sum(th), phi: sum(ph) };
    },
    dispose: () => parts.forEach((p) => [p.t, p.h].forEach((x) => x?.dispose())),
  };
  return self;
}

/** θ₀ (the caller's tensors, untouched) as views of one packed buffer of ours. */
function packed(theta0: readonly Tensor[]): Tensor[] {
  const layout = layoutOf(theta0);
  return unpack(toPacked(theta0, layout), layout).map((t) => t.rt.keep(t));
}

/** Free a trajectory (every tensor in it is ours: θ₀ was packed into our own buffer). */
function releaseTrajectory(
  tr: { thetas: Tensor[][]; ms: Tensor[][]; vs: Tensor[][]; gs: Tensor[][] },
): void {
  for (const list of [tr.thetas, tr.ms, tr.vs, tr.gs]) {
    for (const step of list) for (const t of step) t.dispose();
  }
}

/**
 * Test-time encoding: N inner AdamW steps from θ₀ over the context, the gradient of each
 * step accumulated over K groups of segments (equal to the full-batch gradient: the loss
 * is a sum over rows with one global normaliser). Returns the adapted LoRA (caller owns).
 */
export async function encodeContext(
  lm: PerkLM,
  problem: EncodedProblem,
  mp: MetaParams,
  o: {
    steps: number;
    groups?: number;
    dropoutSeed?: number;
    /** Called after each group's gradient: (done, steps × groups). */
    onProgress?: (done: number, total: number) => void;
  },
): Promise<Tensor[]> {
  const inner = groupedInner(
    lm,
    problem,
    mp.phi,
    (s) => (o.dropoutSeed === undefined ? undefined : o.dropoutSeed + s),
    { groups: o.groups, weightsFrom: mp.weightsFrom },
  );
  const K = inner.groups;
  inner.onGroup = (step, g) => o.onProgress?.(step * K + g + 1, o.steps * K);
  try {
    const be = gpuBackend(mp.lr, undefined, mp.theta0.length);
    const theta0 = packed(mp.theta0);
    const tr = await innerLoop(be, inner, theta0, o.steps).catch((e) => {
      theta0.forEach((t) => t.dispose());
      throw e;
    });
    const last = tr.thetas[o.steps];
    releaseTrajectory({ ...tr, thetas: tr.thetas.slice(0, -1) });
    return last;
  } finally {
    inner.dispose();
  }
}
