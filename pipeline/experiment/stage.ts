/**
 * A stage: a named, versioned, pure step of an experiment. Same parameters and same upstream
 * outputs give the same output, so its output can be cached under a key made of exactly those.
 *
 * Bump `version` whenever the stage's code changes what it outputs; list the kernel/WGSL source
 * files it runs in `kernels` so that editing a kernel invalidates the stage's cache entries.
 */
import type { Effect, Schema } from "effect";

/** What a stage's output becomes on disk: JSON plus optional named binary blobs. */
export interface Encoded {
  readonly json: unknown;
  readonly blobs?: Readonly<Record<string, Uint8Array>>;
}

/** Turns an output into its on-disk form and back. The default is plain JSON. */
export interface OutputCodec<O> {
  encode(output: O): Encoded;
  decode(encoded: Encoded): O;
}

/** Plain-JSON codec (outputs must be JSON values). */
export const jsonCodec = <O>(): OutputCodec<O> => ({
  encode: (output) => ({ json: output }),
  decode: (encoded) => encoded.json as O,
});

/** Services a running stage gets from the runner. */
export interface StageContext {
  /** The stage's cache key (hex). */
  readonly key: string;
  /**
   * A folder private to this key for partial progress (checkpoints). It survives an
   * interrupted run, so a long stage can resume; it is removed once the output is cached.
   */
  readonly scratch: string;
  /** Report progress; shown as a bar on a TTY, periodic lines otherwise. */
  progress(done: number, total: number): void;
  /** Append a metric record (losses, accuracies) to the run's metrics.jsonl. */
  metric(record: Record<string, unknown>): void;
  /** A line for the run's log. */
  log(line: string): void;
}

// deno-lint-ignore no-explicit-any
export type AnyInputs = Record<string, any>;

export interface Stage<P, I extends AnyInputs, O, E = never, R = never> {
  readonly name: string;
  readonly version: number;
  /** Validates the parameters (both type and value rules). */
  readonly params: Schema.Codec<P, unknown>;
  /** Repository-relative paths of the kernel sources this stage runs (hashed into the key). */
  readonly kernels?: readonly string[];
  readonly codec?: OutputCodec<O>;
  /**
   * Seconds this stage takes on the reference host (cost.ts), from its parameters and its
   * upstream nodes' parameters (input name → decoded params); undefined where no cost model
   * applies (another model). `--dry-run` sums these over the stages it would compute.
   */
  readonly estimate?: (
    params: P,
    upstream: Readonly<Record<string, unknown>>,
  ) => number | undefined;
  run(params: P, inputs: I, ctx: StageContext): Effect.Effect<O, E, R>;
}

/**
 * A stage of any parameters, inputs and output, needing at most the services `R`. Its errors
 * are `unknown`: the runner reports any of them as a StageError naming the stage.
 */
// deno-lint-ignore no-explicit-any
export type AnyStage<R = unknown> = Stage<any, any, any, unknown, R>;

/** Identity helper that infers a stage's types from its fields. */
export function defineStage<P, I extends AnyInputs, O, E = never, R = never>(
  stage: Stage<P, I, O, E, R>,
): Stage<P, I, O, E, R> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(stage.name)) {
    throw new Error(`stage name "${stage.name}": use lower-case letters, digits and dashes`);
  }
  if (!Number.isInteger(stage.version) || stage.version < 1) {
    throw new Error(`stage "${stage.name}": version must be a positive integer`);
  }
  return stage;
}
