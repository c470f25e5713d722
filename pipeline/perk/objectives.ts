/**
 * PERK's losses on the GPU, as the meta-gradient sweep's objectives (metagrad.ts):
 *  - inner: Σ_t w_t(θ, φ)·NLL_t(θ) / (rows·(len−1)) over the segment batch (weights from the
 *    weighting model on the adapted model's hidden states, or on fixed ones — the base's —
 *    when given; masked tokens contribute 0);
 *  - outer: mean NLL of the target tokens after the question prompt (no context).
 * Gradients and Hessian-vector products come from the differentiable core (hvp = forward-
 * over-reverse), so H_θθ·v and the mixed H_φθ·v come out of one pass. Results are owned by
 * the sweep (kept out of scopes; it disposes them). When θ is a packed set (one buffer,
 * kernels/optim/packed.ts), gradients and H·v come back packed the same way, so the sweep's
 * optimizer kernels take them without copies.
 */
import type { Tensor } from "../../kernels/runtime/tensor.ts";
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import { mul, scale, sumAll } from "../../kernels/autodiff/basic.ts";
import { grad, hvp } from "../../kernels/autodiff/transforms.ts";
import type { InnerObjective, OuterObjective } from "./metagrad.ts";
import type { TokenBatch } from "./batch.ts";
import { tokenWeights } from "./weighting.ts";
import { layoutOf, packedBase, packedViews, packedZeros } from "../../kernels/optim/packed.ts";

/** What PERK needs of a language model: per-token losses and hidden states with LoRA tensors θ. */
export interface PerkLM {
  readonly rt: Runtime;
  readonly dim: number;
  /** Vocabulary size (logits width), to size accumulation groups (meta_step.ts LOGITS_BUDGET). */
  readonly vocab?: number;
  /**
   * Per-token NLL of `targets` (rows·len; 0 where a target is −1) and the final-norm hidden
   * states (rows·len, C). The head and the cross-entropy may run in row chunks (GpuModel.nll:
   * each chunk's logits fit one bindable buffer), so no vocabulary is too wide for a segment.
   */
  nll(
    batch: TokenBatch,
    targets: Tensor,
    lora: readonly Tensor[],
    o?: { dropoutSeed?: number },
  ): { hidden: Tensor; nll: Tensor };
  /** The frozen base's final-norm hidden states (rows·len, C), no adapter, no logits. */
  baseHidden(batch: TokenBatch): Tensor;
}

/** A batch's targets on the GPU (owned by the caller). */
export const uploadTargets = (rt: Runtime, b: TokenBatch): Tensor =>
  rt.keep(rt.tensor(b.targets, [b.targets.length], "i32"));

/**
 * The weighted inner loss (scalar [1]). `weightsHidden`: the hidden states the weighting model
 * reads (a constant: the base's); default the adapted model's own.
 */
export function innerLoss(
  lm: PerkLM,
  batch: TokenBatch,
  targets: Tensor,
  lora: readonly Tensor[],
  phi: readonly Tensor[],
  dropoutSeed?: number,
  weightsHidden?: Tensor,
): Tensor {
  const { hidden, nll } = lm.nll(batch, targets, lora, { dropoutSeed });
  const w = tokenWeights(weightsHidden ?? hidden, phi);
  return scale(sumAll(mul(nll, w)), 1 / (batch.rows * (batch.len - 1)));
}

/** The outer loss: mean target NLL (scalar [1]). */
export function outerLoss(
  lm: PerkLM,
  batch: TokenBatch,
  targets: Tensor,
  lora: readonly Tensor[],
  dropoutSeed?: number,
): Tensor {
  const { nll } = lm.nll(batch, targets, lora, { dropoutSeed });
  return scale(sumAll(nll), 1 / Math.max(1, batch.count));
}

const own = (rt: Runtime, ts: Tensor[]) => ts.map((t) => rt.keep(t));

/**
 * Where θ's gradients (or H·v) should go: views of a new zeroed packed buffer laid out as θ
 * when θ is packed (in the current scope: results are views of it), else undefined.
 */
function packedLike(rt: Runtime, theta: readonly Tensor[]): Tensor[] | undefined {
  const layout = theta.length ? layoutOf(theta) : undefined;
  if (!layout || !packedBase(theta, layout)) return undefined;
  const flat = packedZeros(rt, layout);
  const views = packedViews(flat, layout);
  flat.dispose(); // the views hold it
  return views;
}

/**
 * Inner objective for one problem. `seedOf(n)` gives inner step n's dropout seed (undefined:
 * no dropout), so the HVP at step n differentiates exactly the function the step used.
 * `weightsHidden`: fixed hidden states for the weighting model (innerLoss), owned by the caller.
 */
export function innerObjective(
  lm: PerkLM,
  batch: TokenBatch,
  targets: Tensor,
  phi: readonly Tensor[],
  seedOf: (n: number) => number | undefined = () => undefined,
  weightsHidden?: Tensor,
): InnerObjective<Tensor, Tensor[]> {
  const rt = lm.rt;
  const k = (n: number) => (...x: Tensor[]) =>
    innerLoss(
      lm,
      batch,
      targets,
      x.slice(0, x.length - phi.length),
      x.slice(x.length - phi.length),
      seedOf(n),
      weightsHidden,
    );
  return {
    grad: (theta, n) =>
      rt.scope(() =>
        own(
          rt,
          grad((...th: Tensor[]) => k(n)(...th, ...phi), theta, { into: packedLike(rt, theta) })
            .grads,
        )
      ),
    hvp: (theta, v, n) =>
      rt.scope(() => {
        const into = packedLike(rt, theta);
        const r = hvp(k(n), [...theta, ...phi], [...v, ...phi.map(() => undefined)], {
          into: into && [...into, ...phi.map(() => undefined)],
        });
        const hv = own(rt, r.hvps);
        return { theta: hv.slice(0, theta.length), phi: hv.slice(theta.length) };
      }),
  };
}

/** Outer objective: value (one readback) and gradient w.r.t. the adapted LoRA. */
export function outerObjective(
  lm: PerkLM,
  batch: TokenBatch,
  targets: Tensor,
  dropoutSeed?: number,
): OuterObjective<Tensor> {
  const rt = lm.rt;
  return {
    valueAndGrad: async (theta) => {
      const r = rt.scope(() => {
        const g = grad((...th: Tensor[]) => outerLoss(lm, batch, targets, th, dropoutSeed), theta, {
          into: packedLike(rt, theta),
        });
        return { value: rt.keep(g.value), grads: own(rt, g.grads) };
      });
      const loss = (await rt.readF32(r.value))[0];
      r.value.dispose();
      return { loss, grad: r.grads };
    },
  };
}
