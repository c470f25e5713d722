/**
 * Test helpers: one shared GPU runtime for the whole test process, seeded random data,
 * closeness assertions with readable messages, and ../shared lookup with skip messages.
 */
import { createRuntime } from "../kernels/runtime/device.ts";
import type { Runtime } from "../kernels/runtime/runtime.ts";
import { mulberry32 } from "../pipeline/data/rng.ts";

let shared: Promise<Runtime> | undefined;
let created: Runtime | undefined;

/**
 * The test file's runtime (created once per file; tests must not destroy it). `deno test` runs
 * each file in its own isolate, so module state is per file: without the unload hook every
 * file's device (its buffers, textures and pipelines) stayed alive until the process exited,
 * ~36 lavapipe devices torn down at once — the suspected cause of a rare glibc abort ("double
 * free or corruption") after every test had passed.
 */
export function testRuntime(): Promise<Runtime> {
  if (!shared) {
    shared = createRuntime().then((rt) => created = rt);
    globalThis.addEventListener("unload", () => created?.destroy());
  }
  return shared;
}

/** Deterministic PRNG (mulberry32). */
export const rng = mulberry32;

/** `n` uniform values in [lo, hi) from a seed. */
export function randn(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** Assert |a-b| ≤ atol + rtol·|b| elementwise; the message names the worst index. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-4, atol = 1e-5, label = "" } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} ≠ expected ${expected.length}`);
  }
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} ` +
        `(rtol ${rtol}, atol ${atol})`,
    );
  }
}

/** Relative error ‖a−b‖ / max(‖b‖, tiny). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** Path inside ../shared, or undefined (with a console message) when it is absent. */
export function sharedPath(rel: string): string | undefined {
  const url = new URL(`../../shared/${rel}`, import.meta.url);
  try {
    Deno.statSync(url);
    return url.pathname;
  } catch {
    console.log(`skip: ../shared/${rel} is absent (a fresh clone has no ../shared)`);
    return undefined;
  }
}

/** A test that reads ../shared/`rel` (given its path): ignored, with sharedPath's note, without it. */
export function sharedTest(
  rel: string,
  name: string,
  fn: (path: string) => void | Promise<void>,
): void {
  const path = sharedPath(rel);
  Deno.test({
    name,
    ignore: path === undefined,
    fn: () => path === undefined ? undefined : fn(path),
  });
}

/**
 * stories260K's greedy continuation of "Once upon a time" (../shared/models/stories260K; the
 * model then starts a new line).
 */
export const STORIES_GOLDEN =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the " +
  "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.";
