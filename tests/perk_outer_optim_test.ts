import assert from "node:assert/strict";
import {
  initOuterState,
  type MetaParam,
  OUTER_DEFAULTS,
  type OuterHyper,
  outerSchedule,
  outerStep,
} from "../pipeline/perk/outer_optim.ts";
import { lrAt } from "../pipeline/train/schedule.ts";

const h = { ...OUTER_DEFAULTS, lr: 0.1, totalSteps: 100 };
/** The outer loop's learning rate at a 0-based step (the shared schedule, PERK's sizing). */
const cosineLr = (x: OuterHyper, step: number) => lrAt(outerSchedule(x), step);

Deno.test("outer schedule: 3% linear warm-up, cosine to zero", () => {
  assert.equal(cosineLr(h, 0), 0.1 / 3);
  assert.ok(Math.abs(cosineLr(h, 2) - 0.1) < 1e-12);
  assert.ok(Math.abs(cosineLr(h, 3 + 97 / 2) - 0.05) < 1e-3);
  assert.ok(cosineLr(h, 99) < 1e-3 && cosineLr(h, 99) >= 0);
});

Deno.test("outer AdamW: clipping, decay only where asked, exact first step", () => {
  const params: MetaParam[] = [
    { name: "lora.A", value: Float32Array.of(1, -1), decay: true },
    { name: "lr", value: Float32Array.of(5e-5), decay: false },
  ];
  const st = initOuterState(params);
  const { gradNorm, lr } = outerStep(params, [Float32Array.of(3, 0), Float32Array.of(-4)], st, h);
  assert.equal(gradNorm, 5);
  assert.equal(lr, 0.1 / 3);
  // First Adam step moves each coordinate by lr·sign(g) (clipping rescales g, not the sign).
  assert.ok(Math.abs(params[0].value[0] - (1 * (1 - lr * 0.01) - lr)) < 1e-6);
  assert.ok(
    Math.abs(params[0].value[1] - -1 * (1 - lr * 0.01)) < 1e-6,
    "zero gradient: decay only",
  );
  assert.ok(Math.abs(params[1].value[0] - (5e-5 + lr)) < 1e-6, "no decay on learning rates");
  assert.ok(Math.abs(st.m[0][0] - 0.1 * 3 / 5) < 1e-7, "moments see the clipped gradient");
  assert.equal(st.step, 1);
});

Deno.test("outer AdamW refuses a non-finite gradient and leaves parameters untouched", () => {
  const params: MetaParam[] = [{ name: "w", value: Float32Array.of(1), decay: true }];
  const st = initOuterState(params);
  assert.throws(() => outerStep(params, [Float32Array.of(NaN)], st, h), /non-finite/);
  assert.equal(params[0].value[0], 1);
  assert.equal(st.step, 0);
});

Deno.test("outer AdamW: a group's own peak rate follows the shared schedule", () => {
  const params: MetaParam[] = [
    { name: "theta0", value: Float32Array.of(0), decay: false },
    { name: "log_lr", value: Float32Array.of(-5), decay: false, lr: 1 },
  ];
  const st = initOuterState(params);
  // Step 0 of a 100-step schedule with 3 warm-up steps: every group at a third of its peak.
  const { lr } = outerStep(params, [Float32Array.of(1e-3), Float32Array.of(-1e-3)], st, h);
  assert.equal(lr, 0.1 / 3);
  assert.ok(Math.abs(params[0].value[0] - -0.1 / 3) < 1e-6);
  assert.ok(Math.abs(params[1].value[0] - (-5 + 1 / 3)) < 1e-5);
});

Deno.test("outer schedule: constant holds the peak after the warm-up", () => {
  const c = { ...h, schedule: "constant" as const };
  assert.equal(cosineLr(c, 0), 0.1 / 3);
  assert.equal(cosineLr(c, 3), 0.1);
  assert.equal(cosineLr(c, 99), 0.1);
});
