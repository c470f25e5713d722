/**
 * Methods (PERK, FT-ICR, prompt-only, …) plug into experiments through this interface: given
 * the problem nodes of one cell (task × train length × test length) and the method's
 * parameters, a method returns the node that produces one prediction per test problem. The
 * experiment adds the shared `score` stage on top, so every method is scored alike.
 *
 * Sharing is by cache key: if two cells build a node with the same stage, parameters and
 * upstream nodes (e.g. PERK's meta-train node, which depends on the training problems but not
 * on the test length), planning merges them and it runs once.
 *
 * Worked example — a method that answers every question with the most common training
 * answer (a real method would add meta-train / encode / reason stages the same way):
 *
 * ```ts
 * import { Effect, Schema } from "effect";
 * import { defineStage } from "./stage.ts";
 * import { node } from "./graph.ts";
 * import type { Method, Prediction } from "./methods.ts";
 * import type { Problem } from "../data/problems.ts";
 *
 * const fit = defineStage({
 *   name: "majority-fit", version: 1,
 *   params: Schema.Struct({ smoothing: Schema.Number }),
 *   run: (_p, inputs: { train: Problem[] }) =>
 *     Effect.sync(() => mostCommon(inputs.train.map((p) => p.answer))),
 * });
 * const predict = defineStage({
 *   name: "majority-predict", version: 1,
 *   params: Schema.Struct({}),
 *   run: (_p, inputs: { answer: string; test: Problem[] }) =>
 *     Effect.sync((): Prediction[] =>
 *       inputs.test.map((p) => ({ id: p.id, prediction: inputs.answer, ms: 0, peakBytes: 0 }))),
 * });
 *
 * export const method: Method<{ smoothing: number }> = {
 *   name: "majority",
 *   description: "most common training answer",
 *   configKeys: ["smoothing"],          // read from the experiment config (experiments/defaults.ts)
 *   params: Schema.Struct({ smoothing: Schema.Number }),
 *   predictions: (cell, params) =>
 *     node(predict, {}, { answer: node(fit, params, { train: cell.train }), test: cell.test }),
 * };
 * ```
 *
 * Registration: put such a module at the path its MethodSource names (experiments/registry.ts,
 * e.g. `pipeline/perk/method.ts` exporting `method`); it is imported when an experiment that
 * compares it runs. Until the module exists the method is "not available yet", which fails
 * the run with that message after building the data — never with made-up results.
 * Stages that use the GPU ask for the `Gpu` service (kernels/runtime/gpu.ts); the experiment
 * runner provides it.
 */
import { Effect, Schema } from "effect";
import type { Problem } from "../data/problems.ts";
import { ConfigError, errorText, MethodUnavailableError } from "./errors.ts";
import type { Node } from "./graph.ts";

/** One prediction; every test problem of the cell gets exactly one. */
export interface Prediction {
  readonly id: string;
  readonly prediction: string;
  /** Wall time spent on this problem (encode + reason), ms. */
  readonly ms: number;
  /** Peak GPU bytes while answering it. */
  readonly peakBytes: number;
}

/** What a method gets for one cell of the experiment grid. */
export interface Cell {
  readonly dataset: string;
  readonly task: string;
  readonly trainLength: string;
  readonly testLength: string;
  readonly trainPosition: string;
  readonly testPosition: string;
  /** Training problems at the train length (meta-training / fine-tuning data). */
  readonly train: Node<Problem[]>;
  /** Held-out problems at the train length (early stopping, learning curves). */
  readonly validation: Node<Problem[]>;
  /** The problems to answer, at the test length. */
  readonly test: Node<Problem[]>;
}

export interface Method<P = Record<string, unknown>> {
  readonly name: string;
  readonly description: string;
  /** The experiment config keys this method reads; they become its `params`. */
  readonly configKeys: readonly string[];
  /** Validates those keys' values (types and value rules). */
  // deno-lint-ignore no-explicit-any
  readonly params: Schema.Codec<P, any>;
  /** The node whose output is one Prediction per problem of `cell.test`. */
  predictions(cell: Cell, params: P): Node<Prediction[]>;
}

// deno-lint-ignore no-explicit-any
export type AnyMethod = Method<any>;

/** One stage a method will run, as shown in a plan while the method is not available. */
export interface StageOutline {
  readonly stage: string;
  /** What one node covers, e.g. "train length", "test problem". */
  readonly per: string;
  /** Config keys it reads. */
  readonly keys: readonly string[];
}

/** Where a method's implementation lives, and what it will run. */
export interface MethodSource {
  readonly name: string;
  readonly description: string;
  /** Repository-relative module exporting `method`. */
  readonly module: string;
  readonly outline: readonly StageOutline[];
}

const repoRoot = new URL("../../", import.meta.url);

function isMethod(m: unknown): m is AnyMethod {
  const x = m as AnyMethod;
  return !!x && typeof x.name === "string" && typeof x.predictions === "function" &&
    Array.isArray(x.configKeys) && x.params !== undefined;
}

/** Methods by name: registered in-process, or loaded at run time from their source module. */
export class MethodRegistry {
  readonly #methods = new Map<string, AnyMethod>();
  readonly #sources = new Map<string, MethodSource>();

  constructor(sources: readonly MethodSource[] = [], methods: readonly AnyMethod[] = []) {
    for (const s of sources) this.#sources.set(s.name, s);
    for (const m of methods) this.register(m);
  }

  register(method: AnyMethod): this {
    this.#methods.set(method.name, method);
    return this;
  }

  /** Every method name an experiment may ask for. */
  names(): string[] {
    return [...new Set([...this.#sources.keys(), ...this.#methods.keys()])].sort();
  }

  source(name: string): MethodSource | undefined {
    return this.#sources.get(name);
  }

  /** The method, or why it is not available. */
  resolve(name: string): Effect.Effect<AnyMethod, MethodUnavailableError> {
    const known = this.#methods.get(name);
    if (known) return Effect.succeed(known);
    const source = this.#sources.get(name);
    if (!source) {
      return Effect.fail(
        new MethodUnavailableError({
          method: name,
          message: `method ${name} is unknown; known methods: ${this.names().join(", ")}`,
        }),
      );
    }
    const url = new URL(source.module, repoRoot);
    return Effect.tryPromise({
      try: async () => {
        try {
          await Deno.stat(url);
        } catch {
          throw new Error(
            `method ${name} is not available yet (${source.module} does not exist; ` +
              `it must export \`method\` implementing Method from pipeline/experiment/methods.ts)`,
          );
        }
        const mod = await import(url.href);
        if (!isMethod(mod.method)) {
          throw new Error(
            `method ${name}: ${source.module} must export \`method\` implementing Method ` +
              "(name, configKeys, params, predictions) from pipeline/experiment/methods.ts",
          );
        }
        return mod.method as AnyMethod;
      },
      catch: (e) => new MethodUnavailableError({ method: name, message: errorText(e) }),
    }).pipe(Effect.tap((m) => Effect.sync(() => this.register(m))));
  }
}

/** The method's parameters: its config keys, validated by its Schema. */
export function methodParams(
  method: AnyMethod,
  config: Readonly<Record<string, unknown>>,
): Effect.Effect<unknown, ConfigError> {
  const picked: Record<string, unknown> = {};
  for (const k of method.configKeys) {
    if (!(k in config)) {
      return Effect.fail(
        new ConfigError({
          message: `method ${method.name} reads config key "${k}", which the experiment config ` +
            "does not define; add it to experiments/defaults.ts",
        }),
      );
    }
    picked[k] = config[k];
  }
  return Schema.decodeUnknownEffect(method.params)(picked).pipe(
    Effect.mapError((e) =>
      new ConfigError({ message: `method ${method.name} parameters: ${e.message}` })
    ),
  );
}
