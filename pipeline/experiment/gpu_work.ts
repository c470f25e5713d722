/**
 * Device work inside a stage: stoppable, and released through Effect.
 *
 * A GPU stage's work is a promise (uploads, kernels, readbacks). Run with `Effect.tryPromise`,
 * an interrupted run (Ctrl-C) would return while that work still runs on the device — and the
 * CLI would then destroy the device under it. `deviceWork` instead aborts the work's signal and
 * waits until the work has stopped: the work calls `signal.throwIfAborted()` between its steps
 * (outer steps, validation and test problems), so it stops at the next one. Models and other
 * device resources are held with `gpuResource` and released when the stage's scope closes —
 * after the work has stopped, whether it finished, failed or was interrupted. The runner
 * stores a stage's output only once `run` has returned, so an interrupted stage leaves no
 * cache entry (its scratch folder, with any checkpoint, stays for the next run to resume from).
 */
import { Effect, type Scope } from "effect";
import { errorText, StageError } from "./errors.ts";

/**
 * `work` as an Effect that fails with a StageError naming `stage`. On interrupt, `signal` is
 * aborted and the fiber waits for `work` to settle (it stops at its next `throwIfAborted`).
 */
export function deviceWork<A>(
  stage: string,
  work: (signal: AbortSignal) => Promise<A>,
): Effect.Effect<A, StageError> {
  // Both parameters declared: Effect passes the signal only to a two-parameter callback.
  return Effect.callback<A, StageError>((resume, signal) => {
    const settled = work(signal).then(
      (a) => resume(Effect.succeed(a)),
      (e) => resume(Effect.fail(new StageError({ stage, message: errorText(e) }))),
    );
    // Runs only on interrupt, after `signal` has been aborted.
    return Effect.promise(() => settled);
  });
}

/** A device resource (a GpuModel, tensors) held for the enclosing scope, then disposed. */
export function gpuResource<T extends { dispose(): void }>(
  stage: string,
  acquire: () => T,
): Effect.Effect<T, StageError, Scope.Scope> {
  return Effect.acquireRelease(
    Effect.try({ try: acquire, catch: (e) => new StageError({ stage, message: errorText(e) }) }),
    (x) => Effect.sync(() => x.dispose()),
  );
}

/** Run a host step of a stage (loading a model, encoding problems) as a StageError on throw. */
export function hostStep<A>(stage: string, step: () => A): Effect.Effect<A, StageError> {
  return Effect.try({ try: step, catch: (e) => new StageError({ stage, message: errorText(e) }) });
}
