import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { Gpu } from "../kernels/runtime/gpu.ts";
import { checkDevice } from "../kernels/runtime/gpu.ts";
import { createRuntime } from "../kernels/runtime/device.ts";

Deno.test("Gpu service: acquires a device with adapter info, releases it with the scope", async () => {
  let destroyed = false;
  const info = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const rt = yield* Gpu;
        const orig = rt.destroy.bind(rt);
        rt.destroy = () => {
          destroyed = true;
          orig();
        };
        return rt.adapter;
      }).pipe(Effect.provide(Gpu.layer())),
    ),
  );
  assert.ok(info.description.length > 0);
  assert.equal(typeof info.isFallbackAdapter, "boolean");
  assert.ok(info.limits.maxStorageBufferBindingSize > 0);
  assert.ok(destroyed, "the device is destroyed when the layer is torn down");
});

Deno.test("Gpu service: no adapter → NoAdapterError that says what to install", async () => {
  const gpu = navigator.gpu;
  const orig = gpu.requestAdapter;
  gpu.requestAdapter = () => Promise.resolve(null);
  try {
    const exit = await Effect.runPromiseExit(
      Effect.scoped(
        Effect.gen(function* () {
          yield* Gpu;
        }).pipe(Effect.provide(Gpu.layer())),
      ),
    );
    assert.ok(Exit.isFailure(exit));
    const msg = JSON.stringify(exit.cause);
    assert.match(msg, /NoAdapterError/);
    assert.match(msg, /mesa-vulkan-drivers/);
  } finally {
    gpu.requestAdapter = orig;
  }
});

Deno.test("Gpu service: a lost device gives a typed error and dispatch refuses to run", async () => {
  const rt = await createRuntime();
  rt.device.destroy();
  await rt.device.lost;
  const exit = await Effect.runPromiseExit(checkDevice(rt));
  assert.ok(Exit.isFailure(exit));
  assert.match(JSON.stringify(exit.cause), /DeviceLostError/);
  assert.throws(
    () =>
      rt.dispatch(
        { name: "noop", code: "@compute @workgroup_size(1) fn main() {}", bindings: [] },
        [],
        [1],
      ),
    /device lost/,
  );
});
