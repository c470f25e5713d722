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
 *
 * Sinks: `backward` may be told where a leaf's cotangent (and, forward-over-reverse, its
 * tangent: the HVP) must end up — e.g. views of one packed buffer, so an optimizer updates
 * all tensors in one dispatch. A VJP rule that produces the cotangent of a leaf used by its
 * node only asks `cotangentSink` and writes there directly; anything else is copied there.
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
   * `acc[k]` (inputs listed in `accumulates` only) is the cotangent input k has gathered so
   * far from later uses: a rule that folds it into its result (e.g. as a matmul's addend)
   * returns the sum, saving the tape a separate add.
   */
  vjp(
    xs: readonly Tensor[],
    ys: readonly Tensor[],
    gs: readonly MaybeTensor[],
    p: P,
    needs: readonly boolean[],
    acc: readonly MaybeTensor[],
  ): MaybeTensor[];
  /**
   * Inputs whose VJP result includes `acc[k]` when it is given (see vjp). The rule must then
   * return a cotangent for k (acc[k] itself when its own contribution is zero).
   */
  readonly accumulates?: readonly number[];
  /** Which inputs the VJP reads (default: all). */
  readonly saveInputs?: boolean | readonly number[];
  /** Whether the VJP reads the outputs (default: no), or which ones. */
  readonly saveOutputs?: boolean | readonly number[];
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
  /** Leaf → how many recorded node inputs it is (a sink is written directly only for one). */
  readonly uses: Map<Tensor, number>;
}

/** Where a leaf's cotangent (`value`) and its tangent (`tangent`) are to be written. */
export interface CotangentSink {
  readonly value?: Tensor;
  readonly tangent?: Tensor;
}

let depth = 0;
let tape: TapeState | undefined;
/** The sinks of the backward pass running now, and the leaves' use counts (cotangentSink). */
let sinking:
  | { readonly sinks: Map<Tensor, CotangentSink>; readonly uses: Map<Tensor, number> }
  | undefined;

/**
 * Inside a VJP rule: fresh views of the sink of input `x`'s cotangent and of its tangent,
 * when the caller asked for one and this node is x's only use (so the rule's result is the
 * whole cotangent). A rule that writes the cotangent there returns the value view as x's
 * cotangent (and leaves its tangent in the tangent view); unused views die with the scope.
 */
export function cotangentSink(x: Tensor): { value?: Tensor; tangent?: Tensor } | undefined {
  const st = sinking, s = st?.sinks.get(x);
  if (!st || !s || st.uses.get(x) !== 1) return undefined;
  return { value: s.value?.view(x.shape), tangent: s.tangent?.view(x.shape) };
}

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
    const so = rule.saveOutputs ?? false;
    ys.forEach((y, i) => {
      if (so === true || (Array.isArray(so) && so.includes(i))) saved.push(y.retain());
    });
    for (const x of xs) {
      const u = tape.uses.get(x);
      if (u !== undefined) tape.uses.set(x, u + 1);
    }
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
 * With `sinks[i]`, leaf i's cotangent (its tangent) comes back as a view of `sinks[i].value`
 * (`.tangent`), which then holds it — zeros where nothing flowed.
 */
export function record<T extends Tensor>(
  leaves: readonly Tensor[],
  fn: () => T,
): {
  out: T;
  backward: (seed: Tensor, sinks?: readonly (CotangentSink | undefined)[]) => MaybeTensor[];
  release: () => void;
} {
  if (tape) {
    throw new Error("nested reverse-mode recording is not supported (use hvp for 2nd order)");
  }
  const state: TapeState = {
    nodes: [],
    live: new Set(leaves),
    uses: new Map(leaves.map((l) => [l, 0])),
  };
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
  return {
    out,
    backward: (seed, sinks) => backward(rt, state, out, seed, leaves, sinks),
    release,
  };
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
  sinks?: readonly (CotangentSink | undefined)[],
): MaybeTensor[] {
  const sinkOf = new Map<Tensor, CotangentSink>();
  leaves.forEach((l, i) => {
    const s = sinks?.[i];
    if (s && (s.value || s.tangent)) {
      for (const t of [s.value, s.tangent]) {
        if (t && (t.size !== l.size || t.dtype !== l.dtype)) {
          throw new RangeError(`backward: sink ${t} does not fit leaf ${l}`);
        }
      }
      sinkOf.set(l, s);
    }
  });
  try {
    sinking = sinkOf.size ? { sinks: sinkOf, uses: state.uses } : undefined;
    const result = sweep(rt, state, out, seed, leaves);
    return sinkOf.size ? leaves.map((l, i) => intoSink(rt, l, result[i], sinkOf.get(l))) : result;
  } finally {
    sinking = undefined;
  }
}

const atSink = (t: Tensor, s: Tensor) =>
  t.buf === s.buf && t.byteOffset === s.byteOffset && t.size === s.size;

/**
 * Leaf `l`'s cotangent `g` moved into its sink: kept where a rule already wrote it there,
 * else copied (a copy command, no dispatch) or zeroed; the same for g's tangent.
 */
function intoSink(rt: Runtime, l: Tensor, g: MaybeTensor, s: CotangentSink | undefined) {
  if (!s) return g;
  let out = g;
  if (s.value && !(g && atSink(g, s.value))) {
    if (g) rt.copy(g, s.value);
    else rt.clear(s.value);
    out = own(rt, s.value.view(l.shape));
    if (g) {
      out.tangent = g.tangent;
      g.tangent = undefined;
      g.dispose();
    }
  }
  if (s.tangent) {
    out ??= own(rt, rt.zeros(l.shape));
    const t = out.tangent;
    if (!(t && atSink(t, s.tangent))) {
      if (t) rt.copy(t, s.tangent);
      else rt.clear(s.tangent);
      out.tangent = own(rt, s.tangent.view(l.shape));
      t?.dispose();
    }
  }
  return out;
}

function sweep(
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
      // Partial cotangents the rule may fold in (an input used twice by the node: no).
      const acc = node.xs.map((x, k) =>
        node.rule.accumulates?.includes(k) && node.xs.indexOf(x) === node.xs.lastIndexOf(x)
          ? grads.get(x)
          : undefined
      );
      const dxs = rt.scope(() =>
        node.rule.vjp(node.xs, node.ys, gs, node.p, needs, acc).map((d) => d ?? null)
      );
      const seen = new Set<Tensor>([...gs, ...acc].filter((g): g is Tensor => !!g));
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
        if (prev && acc[k] === prev) {
          grads.set(x, d); // d already holds prev
          prev.dispose();
        } else grads.set(x, prev ? addOwned(rt, prev, d, add) : d);
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
