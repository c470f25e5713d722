/**
 * Methods (PERK, FT-ICR, prompt-only, …) plug into experiments through this interface: given
 * the problem nodes of one cell (task × train length × test length) and the method's
 * parameters, a method returns the node that produces one prediction per test problem. The
 * experiment adds the shared `score` stage on top, so every method is scored alike.
 *
 * Sharing is by cache key: if two cells build a node with the same stage, parameters and
 * upstream nodes (e.g. PERK's `perk-meta-train` node, which depends on the training problems
 * but not on the test length), planning merges them and it runs once.
 *
 * Worked example — a method that answers every question with the most common training
 * answer (a real method adds training / answering stages the same way, e.g. PERK's
 * `perk-meta-train` → `perk-answer` in pipeline/perk/method.ts):
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
 *   // One field per config key it reads: the keys are these fields' names, declared nowhere
 *   // else (experiments/defaults.ts gives each key its default per profile).
 *   params: Schema.Struct({ smoothing: Schema.Number }),
 *   predictions: (cell, params) =>
 *     node(predict, {}, { answer: node(fit, params, { train: cell.train }), test: cell.test }),
 * };
 * ```
 *
 * Registration: import the module's `method` in experiments/methods.ts and list it in
 * `METHODS`; the experiment CLI's registry is that list, and an unknown name in a config is
 * refused with the known ones. A method's node type carries the services its stages need:
 * stages that use the GPU ask for the `Gpu` service (kernels/runtime/gpu.ts), so such a
 * method is a `Method<P, Gpu>` and running it asks the caller to provide a device (the
 * experiment CLI does). GPU stages run their device work with `deviceWork` (gpu_work.ts), so
 * an interrupted run (Ctrl-C) stops them at their next step and releases their models.
 */
import { Effect, Schema } from "effect";
import type { Problem } from "../data/problems.ts";
import { ConfigError } from "./errors.ts";
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

/** What a method gets for one cell of the experiment grid (data nodes: they need no services). */
export interface Cell {
  readonly dataset: string;
  readonly task: string;
  readonly trainLength: string;
  readonly testLength: string;
  readonly trainPosition: string;
  readonly testPosition: string;
  /** Training problems at the train length (meta-training / fine-tuning data). */
  readonly train: Node<Problem[], never>;
  /** Held-out problems at the train length (early stopping, learning curves). */
  readonly validation: Node<Problem[], never>;
  /** The problems to answer, at the test length. */
  readonly test: Node<Problem[], never>;
}

/**
 * A method's parameters: a Struct with one field per experiment config key it reads, so the
 * keys are declared once, as the fields' names.
 */
// deno-lint-ignore no-explicit-any
export type MethodParams<P> = Schema.Codec<P, any> & { readonly fields: Schema.Struct.Fields };

/** A method; `R` is the services its stages need (`Gpu` for the GPU methods). */
export interface Method<P = Record<string, unknown>, R = never> {
  readonly name: string;
  readonly description: string;
  /** Its config keys (the fields) and their types and value rules. */
  readonly params: MethodParams<P>;
  /** The node whose output is one Prediction per problem of `cell.test`. */
  predictions(cell: Cell, params: P): Node<Prediction[], R>;
}

/** A method of any parameters whose stages need at most the services `R`. */
// deno-lint-ignore no-explicit-any
export type AnyMethod<R = unknown> = Method<any, R>;

/** The experiment config keys a method reads: its params Struct's fields. */
export const configKeys = (method: AnyMethod): string[] => Object.keys(method.params.fields);

/** The registered methods, by name. */
export class MethodRegistry<R = never> {
  readonly #methods = new Map<string, AnyMethod<R>>();

  constructor(methods: readonly AnyMethod<R>[]) {
    for (const m of methods) {
      if (this.#methods.has(m.name)) throw new Error(`method ${m.name} is registered twice`);
      this.#methods.set(m.name, m);
    }
  }

  /** Every method name an experiment may ask for. */
  names(): string[] {
    return [...this.#methods.keys()].sort();
  }

  /** The method of that name, or a ConfigError listing the known ones. */
  resolve(name: string): Effect.Effect<AnyMethod<R>, ConfigError> {
    const known = this.#methods.get(name);
    return known ? Effect.succeed(known) : Effect.fail(
      new ConfigError({
        message: `method ${name} is unknown; known methods: ${this.names().join(", ")}`,
      }),
    );
  }
}

/** The method's parameters: its config keys, validated by its Schema. */
export function methodParams(
  method: AnyMethod,
  config: Readonly<Record<string, unknown>>,
): Effect.Effect<unknown, ConfigError> {
  const picked: Record<string, unknown> = {};
  for (const k of configKeys(method)) {
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
