/**
 * The `Gpu` service: one WebGPU device for the program, acquired when the layer is built
 * and destroyed when it is torn down. Stages ask for it with `yield* Gpu`.
 */
import { Context, Effect, Layer } from "effect";
import { createRuntime, type DeviceOptions } from "./device.ts";
import { DeviceLostError, NoAdapterError } from "./errors.ts";
import type { Runtime } from "./runtime.ts";

export class Gpu extends Context.Service<Gpu, Runtime>()("perk/kernels/runtime/Gpu") {
  static readonly layer = (opts: DeviceOptions = {}): Layer.Layer<Gpu, NoAdapterError> =>
    Layer.effect(
      Gpu,
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => createRuntime(opts),
          catch: (e) => new NoAdapterError({ message: e instanceof Error ? e.message : String(e) }),
        }),
        (rt) => Effect.sync(() => rt.destroy()),
      ),
    );
}

/** Fail with a typed error if the device was lost since the last check. */
export const checkDevice = (rt: Runtime): Effect.Effect<void, DeviceLostError> =>
  rt.lostReason
    ? Effect.fail(
      new DeviceLostError({
        message: `the GPU device was lost (${rt.lostReason}); restart the run — ` +
          "finished stages are cached and will not be recomputed",
      }),
    )
    : Effect.void;
