/**
 * Experiment graphs: nodes are (stage, parameters, upstream nodes). Planning validates every
 * node's parameters with its stage's Schema and gives it a cache key; nodes with equal keys
 * (e.g. the data stage shared by every point of a sweep) become one planned node, computed
 * once and shared.
 *
 * key = SHA-256 of canonical JSON {stage, version, params, upstream keys, kernel source hashes}
 *
 * A node's type carries the services its stage and every upstream stage need (`R`, e.g. `Gpu`),
 * so running a graph asks for exactly those; a graph of data stages needs none.
 */
import { Effect, Schema } from "effect";
import { ConfigError, errorText } from "./errors.ts";
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { AnyInputs, AnyStage, Stage } from "./stage.ts";

/**
 * One node of an experiment graph. `O` is the output type (phantom); `R` the services running
 * it and its upstream nodes needs (`unknown`: not known, so it cannot be run as it is typed).
 */
export interface Node<O = unknown, R = unknown> {
  readonly stage: AnyStage<R>;
  readonly params: unknown;
  readonly inputs: Readonly<Record<string, Node<unknown, R>>>;
  readonly _output?: O;
}

/** The services a node needs. */
export type NodeServices<N> = N extends Node<unknown, infer R> ? R : never;

// The inputs a stage reads, each a node of the right output type; their services are inferred
// from the nodes given (`any` here only bounds them).
// deno-lint-ignore no-explicit-any
type NodesOf<I> = { readonly [K in keyof I]: Node<I[K], any> } & Record<string, Node<any, any>>;

/** A node running `stage` with `params` on the outputs of `inputs` (typed by the stage). */
export function node<P, I extends AnyInputs, O, E, R>(
  stage: Stage<P, I, O, E, R>,
  params: P,
): Node<O, R>;
export function node<P, I extends AnyInputs, O, E, R, N extends NodesOf<I>>(
  stage: Stage<P, I, O, E, R>,
  params: P,
  inputs: N,
): Node<O, R | NodeServices<N[keyof N]>>;
export function node(
  stage: AnyStage,
  params: unknown,
  inputs: Readonly<Record<string, Node>> = {},
): Node {
  return { stage, params, inputs };
}

/** A node with its key resolved. */
export interface PlannedNode<R = unknown> {
  readonly key: string;
  readonly node: Node<unknown, R>;
  /** Decoded parameters (what `run` receives). */
  readonly params: unknown;
  /** Encoded parameters (what the key hashes and the cache records). */
  readonly encodedParams: unknown;
  /** Input name → upstream key. */
  readonly upstream: Readonly<Record<string, string>>;
  /** Kernel source path → SHA-256. */
  readonly kernels: Readonly<Record<string, string>>;
}

export interface Plan<R = unknown> {
  /** Every distinct node, upstream first. */
  readonly order: readonly PlannedNode<R>[];
  /** Target name → key. */
  readonly targetKeys: Readonly<Record<string, string>>;
}

const repoRoot = new URL("../../", import.meta.url);
const kernelHashes = new Map<string, Promise<string>>();

/** Hash of a kernel source file (repository-relative), once per process. */
function kernelHash(path: string): Promise<string> {
  let h = kernelHashes.get(path);
  if (!h) {
    h = Deno.readFile(new URL(path, repoRoot)).then(sha256Hex, () => {
      throw new Error(`kernel source "${path}" (listed by a stage) does not exist; fix the path`);
    });
    kernelHashes.set(path, h);
  }
  return h;
}

/** What a node's cache key hashes (the cache keeps it beside the output: cache.ts). */
export interface KeyParts {
  readonly stage: string;
  readonly version: number;
  /** Encoded parameters. */
  readonly params: unknown;
  /** Input name → upstream key. */
  readonly upstream: Readonly<Record<string, string>>;
  /** Repository-relative kernel source path → SHA-256 of its text. */
  readonly kernels: Readonly<Record<string, string>>;
}

/** The cache key of a node from its parts (exported for tests and tools). */
export function stageKey(parts: KeyParts): Promise<string> {
  return sha256Hex(canonicalJson(parts));
}

/**
 * Resolve keys for every node reachable from `targets`, in topological order (upstream
 * first), with equal keys merged. A bad parameter fails here, before anything runs.
 */
export const plan = <R>(
  targets: Readonly<Record<string, Node<unknown, R>>>,
): Effect.Effect<Plan<R>, ConfigError> =>
  Effect.gen(function* () {
    const keys = new Map<Node<unknown, R>, string>();
    const order: PlannedNode<R>[] = [];
    const seen = new Set<string>();
    const visiting = new Set<Node<unknown, R>>();
    const visit = Effect.fnUntraced(function* (
      n: Node<unknown, R>,
    ): Effect.fn.Return<string, ConfigError> {
      const known = keys.get(n);
      if (known) return known;
      if (visiting.has(n)) {
        return yield* new ConfigError({ message: `stage "${n.stage.name}" depends on itself` });
      }
      visiting.add(n);
      const upstream: Record<string, string> = {};
      for (const name of Object.keys(n.inputs).sort()) {
        upstream[name] = yield* visit(n.inputs[name]);
      }
      const params = yield* Schema.decodeUnknownEffect(n.stage.params)(n.params).pipe(
        Effect.mapError((e) =>
          new ConfigError({ message: `stage "${n.stage.name}" parameters: ${e.message}` })
        ),
      );
      const encodedParams = Schema.encodeSync(n.stage.params)(params);
      const paths = [...new Set(n.stage.kernels ?? [])].sort();
      const hashes = yield* Effect.tryPromise({
        try: () => Promise.all(paths.map(kernelHash)),
        catch: (e) => new ConfigError({ message: `stage "${n.stage.name}": ${errorText(e)}` }),
      });
      const kernels = Object.fromEntries(paths.map((p, i) => [p, hashes[i]]));
      const key = yield* Effect.promise(() =>
        stageKey({
          stage: n.stage.name,
          version: n.stage.version,
          params: encodedParams,
          upstream,
          kernels,
        })
      );
      visiting.delete(n);
      keys.set(n, key);
      if (!seen.has(key)) {
        seen.add(key);
        order.push({ key, node: n, params, encodedParams, upstream, kernels });
      }
      return key;
    });
    const targetKeys: Record<string, string> = {};
    for (const [name, n] of Object.entries(targets)) targetKeys[name] = yield* visit(n);
    const planned: Plan<R> = { order, targetKeys };
    return planned;
  });

/** Keys reachable from `key` (itself included), following upstream edges. */
export function reachable(p: Plan, key: string): Set<string> {
  const byKey = new Map(p.order.map((n) => [n.key, n]));
  const out = new Set<string>();
  const stack = [key];
  while (stack.length) {
    const k = stack.pop()!;
    if (out.has(k)) continue;
    out.add(k);
    stack.push(...Object.values(byKey.get(k)?.upstream ?? {}));
  }
  return out;
}
