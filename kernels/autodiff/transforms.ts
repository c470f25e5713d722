/**
 * Function transforms over the tape: grad, vjp, jvp and hvp (forward-over-reverse).
 * `f` takes the differentiated tensors and returns a tensor (a scalar [1] for grad/hvp).
 * Returned tensors belong to the caller's current scope (like any op result).
 */
import type { Tensor } from "../runtime/tensor.ts";
import { type CotangentSink, type MaybeTensor, record } from "./tape.ts";

const zerosLike = (t: Tensor) => t.rt.zeros(t.shape);

/** Hand results to the caller's scope (zeros where nothing flowed). */
function fill(gs: readonly MaybeTensor[], xs: readonly Tensor[]): Tensor[] {
  return gs.map((g, i) => (g ? xs[i].rt.adopt(g) : zerosLike(xs[i])));
}

/**
 * Where results go (`into[i]` for input i; e.g. views of one packed buffer): the result for
 * input i is then a view of `into[i]`. The caller keeps its own `into` tensors.
 */
export interface Into {
  readonly into?: readonly MaybeTensor[];
}

/** Reverse mode: the output and a pullback (cotangent of the output → cotangents of xs). */
export function vjp(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  sinks?: readonly (CotangentSink | undefined)[],
): { out: Tensor; pullback: (g: Tensor) => Tensor[]; release: () => void } {
  const r = record(xs, () => f(...xs));
  let used = false;
  return {
    out: r.out,
    pullback: (g) => {
      if (used) throw new Error("vjp: the pullback runs once (the tape frees as it goes)");
      used = true;
      return fill(r.backward(g, sinks), xs);
    },
    release: r.release,
  };
}

/** Value and gradient of a scalar function (gradients written `into` where given). */
export function grad(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  o: Into = {},
): { value: Tensor; grads: Tensor[] } {
  const sinks = o.into?.map((t) => t && { value: t });
  const { value, grads } = gradKeepingTangents(f, xs, sinks);
  return { value: detach(value), grads: grads.map(detach) };
}

function gradKeepingTangents(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  sinks?: readonly (CotangentSink | undefined)[],
): { value: Tensor; grads: Tensor[] } {
  const { out, pullback } = vjp(f, xs, sinks);
  if (out.size !== 1) throw new Error(`grad needs a scalar output, got ${out}`);
  const seed = out.rt.tensor([1], out.shape);
  out.rt.keep(seed);
  const grads = pullback(seed);
  seed.dispose();
  return { value: out, grads };
}

/** Forward mode: the output and its tangent for tangents `dxs` of `xs`. */
export function jvp(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  dxs: readonly MaybeTensor[],
): { out: Tensor; tangent: Tensor } {
  const restore = attachTangents(xs, dxs);
  try {
    const out = xs[0].rt.scope(() => f(...xs));
    const t = out.tangent ? out.rt.adopt(out.tangent) : zerosLike(out);
    out.tangent = undefined;
    return { out, tangent: t };
  } finally {
    restore();
  }
}

/**
 * Hessian-vector product of a scalar function: value, gradient, and H·v — the JVP of the
 * gradient along v (forward-over-reverse). Tangents flow through the forward pass and then
 * through the VJP rules during the one backward pass; no double-backward graph is kept.
 * Tangents in `vs` may be undefined (zero) for some inputs: their rows of H·v still come
 * out (mixed second derivatives), which PERK's weighting-model term needs. `into` receives
 * the Hessian-vector products (not the gradients).
 */
export function hvp(
  f: (...xs: Tensor[]) => Tensor,
  xs: readonly Tensor[],
  vs: readonly MaybeTensor[],
  o: Into = {},
): { value: Tensor; grads: Tensor[]; hvps: Tensor[] } {
  const restore = attachTangents(xs, vs);
  try {
    const sinks = o.into?.map((t) => t && { tangent: t });
    const { value, grads } = gradKeepingTangents(f, xs, sinks);
    detach(value);
    const hvps = grads.map((g) => {
      const t = g.tangent ? g.rt.adopt(g.tangent) : zerosLike(g);
      g.tangent = undefined;
      return t;
    });
    return { value, grads, hvps };
  } finally {
    restore();
  }
}

/** Drop a tensor's tangent (keeps the value). */
function detach(t: Tensor): Tensor {
  const d = t.tangent;
  t.tangent = undefined;
  d?.dispose();
  return t;
}

function attachTangents(xs: readonly Tensor[], dxs: readonly MaybeTensor[]): () => void {
  const before = xs.map((x) => x.tangent);
  xs.forEach((x, i) => {
    const d = dxs[i];
    if (d && d.size !== x.size) throw new RangeError(`tangent ${d} does not match input ${x}`);
    x.tangent = d
      ? (d.shape.join() === x.shape.join() ? d.retain() : x.rt.keep(d.view(x.shape)))
      : undefined;
  });
  return () =>
    xs.forEach((x, i) => {
      x.tangent?.dispose();
      x.tangent = before[i];
    });
}
