/**
 * The autodiff engine. An op is a Rule (forward kernel + JVP rule + VJP rule, kept together
 * as data); `apply(rule, inputs, params)` runs it and
 *  - forward mode: when any input carries a tangent (`tensor.tangent`), runs the JVP rule
 *    and attaches the output tangents (owned by the outputs);
 *  - reverse mode: when a tape is recording and any input is being differentiated, records
 *    a node that holds only what the VJP rule needs (`saveInputs` / `saveOutputs`).
 *
 * `backward` walks the tape in reverse with recording off and forward mode on: VJP rules
 * are written with differentiable ops, so when the forward values carry tangents the
 * cotangents get tangents too — forward-over-reverse, i.e. Hessian-vector products, with no
 * double-backward graph. A node's saved tensors are released as soon as it has run.
 *
 * Inside rules (forward, JVP, VJP bodies) `apply` calls nest; nested JVP and forward calls
 * run "plain" (depth > 0: no tangents, no tape) so rules may use the differentiable ops as
 * ordinary functions. VJP bodies run at depth 0 so their ops propagate tangents.
 */
import type { Runtime } from "../runtime/runtime.ts";
import type { Tensor } from "../runtime/tensor.ts";

export type MaybeTensor = Tensor | undefined;

export interface Rule<P = void> {
  readonly name: string;
  /** Plain computation of the outputs. */
  forward(xs: readonly Tensor[], p: P): Tensor[];
  /** Output tangents from input tangents (undefined = zero). Runs plain. */
  jvp(
    xs: readonly Tensor[],
    dxs: readonly MaybeTensor[],
    ys: readonly Tensor[],
    p: P,
  ): MaybeTensor[];
  /**
   * Input cotangents from output cotangents (undefined = zero), written with differentiable
   * ops. Only saved inputs/outputs may be read (others are shape-only: their data is gone).
   * `needs[k]` is false when input k does not depend on the tape's leaves: its cotangent
   * would be dropped, so a rule may skip computing it (e.g. ∂W of a frozen weight).
   */
  vjp(
    xs: readonly Tensor[],
    ys: readonly Tensor[],
    gs: readonly MaybeTensor[],
    p: P,
    needs: readonly boolean[],
  ): MaybeTensor[];
  /** Which inputs the VJP reads (default: all). */
  readonly saveInputs?: boolean | readonly number[];
  /** Whether the VJP reads the outputs (default: no). */
  readonly saveOutputs?: boolean;
}

interface Node {
  readonly rule: Rule<unknown>;
  readonly p: unknown;
  readonly xs: readonly Tensor[];
  readonly ys: readonly Tensor[];
  /** Tensors this node holds a reference on until it has run backward. */
  saved: Tensor[];
}

interface TapeState {
  readonly nodes: Node[];
  /** Tensors being differentiated: watched leaves and outputs of recorded nodes. */
  readonly live: Set<Tensor>;
}

let depth = 0;
let tape: TapeState | undefined;

/** Run `fn` plain: no tangents, no recording (used inside rules). */
export function plain<T>(fn: () => T): T {
  depth++;
  try {
    return fn();
  } finally {
    depth--;
  }
}

/** Give a tensor produced in a scope a life of its own (owned by the caller). */
function own(rt: Runtime, t: Tensor): Tensor {
  return rt.keep(t);
}

export function apply<P>(rule: Rule<P>, xs: readonly Tensor[], p: P): Tensor[] {
  const rt = xs[0].rt;
  if (depth > 0) return plain(() => rule.forward(xs, p));
  const ys = rt.scope(() => plain(() => rule.forward(xs, p)));
  // Forward mode.
  if (xs.some((x) => x.tangent)) {
    const dys = rt.scope(() =>
      plain(() => rule.jvp(xs, xs.map((x) => x.tangent), ys, p)).map((d) => d ?? null)
    );
    dys.forEach((d, i) => {
      if (!d) return;
      // A rule may return an input's tangent or one tensor twice: hold one ref per owner.
      if (ys.some((y) => y.tangent === d) || xs.some((x) => x.tangent === d)) d.retain();
      else own(rt, d);
      ys[i].tangent = d;
    });
  }
  // Reverse mode.
  if (tape && xs.some((x) => tape!.live.has(x))) {
    const si = rule.saveInputs ?? true;
    const saved: Tensor[] = [];
    xs.forEach((x, i) => {
      if (si === true || (Array.isArray(si) && si.includes(i))) saved.push(x.retain());
    });
    if (rule.saveOutputs) { for (const y of ys) saved.push(y.retain()); }
    tape.nodes.push({ rule: rule as Rule<unknown>, p, xs, ys, saved });
    for (const y of ys) tape.live.add(y);
  }
  return ys;
}

/** Single-output convenience. */
export const apply1 = <P>(rule: Rule<P>, xs: readonly Tensor[], p: P): Tensor =>
  apply(rule, xs, p)[0];

/**
 * Record `fn(leaves)` on a fresh tape and return its output plus a backward function giving
 * the cotangents of `leaves` for a cotangent of the output. The caller owns everything.
 */
export function record<T extends Tensor>(
  leaves: readonly Tensor[],
  fn: () => T,
): { out: T; backward: (seed: Tensor) => MaybeTensor[]; release: () => void } {
  if (tape) {
    throw new Error("nested reverse-mode recording is not supported (use hvp for 2nd order)");
  }
  const state: TapeState = { nodes: [], live: new Set(leaves) };
  const rt = leaves[0].rt;
  tape = state;
  let out: T;
  try {
    out = rt.scope(fn);
  } catch (e) {
    releaseNodes(state.nodes);
    throw e;
  } finally {
    tape = undefined;
  }
  const release = () => releaseNodes(state.nodes.splice(0));
  return { out, backward: (seed) => backward(rt, state, out, seed, leaves), release };
}

function releaseNodes(nodes: Node[]): void {
  for (const n of nodes) {
    for (const t of n.saved) t.dispose();
    n.saved = [];
  }
}

function addOwned(
  rt: Runtime,
  a: Tensor,
  b: Tensor,
  add: (a: Tensor, b: Tensor) => Tensor,
): Tensor {
  const s = own(rt, rt.scope(() => add(a, b)));
  a.dispose();
  b.dispose();
  return s;
}

let addFn: ((a: Tensor, b: Tensor) => Tensor) | undefined;
/** The differentiable add used to sum cotangents (set by ops to avoid an import cycle). */
export function setCotangentAdd(fn: (a: Tensor, b: Tensor) => Tensor): void {
  addFn = fn;
}

function backward(
  rt: Runtime,
  state: TapeState,
  out: Tensor,
  seed: Tensor,
  leaves: readonly Tensor[],
): MaybeTensor[] {
  const grads = new Map<Tensor, Tensor>();
  grads.set(out, seed.retain());
  const add = addFn!;
  for (let i = state.nodes.length - 1; i >= 0; i--) {
    const node = state.nodes[i];
    const gs = node.ys.map((y) => grads.get(y));
    for (const y of node.ys) grads.delete(y);
    if (gs.some((g) => g)) {
      const needs = node.xs.map((x) => state.live.has(x));
      const dxs = rt.scope(() =>
        node.rule.vjp(node.xs, node.ys, gs, node.p, needs).map((d) => d ?? null)
      );
      const seen = new Set<Tensor>(gs.filter((g): g is Tensor => !!g));
      dxs.forEach((d, k) => {
        if (!d) return;
        if (seen.has(d)) d.retain();
        else {
          own(rt, d);
          seen.add(d);
        }
        const x = node.xs[k];
        if (!state.live.has(x)) {
          d.dispose();
          return;
        }
        const prev = grads.get(x);
        grads.set(x, prev ? addOwned(rt, prev, d, add) : d);
      });
      for (const g of gs) g?.dispose();
    }
    for (const t of node.saved) t.dispose();
    node.saved = [];
  }
  state.nodes.length = 0;
  const result = leaves.map((l) => {
    const g = grads.get(l);
    grads.delete(l);
    return g;
  });
  for (const g of grads.values()) g.dispose();
  return result;
}
