/** Stage source lists from the import graph (pipeline/experiment/sources.ts). */
import assert from "node:assert/strict";
import { importClosure, runtimeImports, stageSources } from "../pipeline/experiment/sources.ts";

Deno.test("runtimeImports: static, multi-line, re-export, side-effect and dynamic imports; not type-only ones", () => {
  const text = [
    'import { a } from "./a.ts";',
    "import {",
    "  b,",
    "  type B,",
    '} from "../b.ts";',
    'import type { T } from "./types.ts";',
    'export type { U } from "./utypes.ts";',
    'export * from "./c.ts";',
    'export { d } from "./d.ts";',
    'import "./side.ts";',
    'const e = await import("./e.ts");',
    'import { Effect } from "effect";',
    ' * import { f } from "./in_a_comment.ts";',
    'export const g = "./not_an_import.ts";',
  ].join("\n");
  assert.deepEqual(runtimeImports(text), [
    "./a.ts",
    "../b.ts",
    "./c.ts",
    "./d.ts",
    "./side.ts",
    "./e.ts",
  ]);
});

Deno.test("importClosure: transitive, cycle-safe, excludes prefixes, names the importer of a missing module", () => {
  const files: Record<string, string> = {
    "s/stage.ts": 'import { k } from "../k/kern.ts";\nimport { r } from "../x/report.ts";',
    "k/kern.ts": 'import { h } from "./helper.ts";',
    "k/helper.ts": 'import { k } from "./kern.ts";\nimport type { T } from "./types_only.ts";',
    "x/report.ts": 'import { z } from "../k/unused.ts";',
  };
  const root = new URL("file:///repo/");
  const read = (u: URL) => {
    const text = files[u.href.slice(root.href.length)];
    if (text === undefined) throw new Error("absent");
    return text;
  };
  assert.deepEqual(importClosure(["s/stage.ts"], { root, read, exclude: ["x/"] }), [
    "k/helper.ts",
    "k/kern.ts",
    "s/stage.ts",
  ]);
  files["k/helper.ts"] += '\nimport { m } from "./missing.ts";';
  assert.throws(
    () => importClosure(["s/stage.ts"], { root, read, exclude: ["x/"] }),
    /"k\/missing.ts" \(imported by k\/helper.ts\) cannot be read/,
  );
});

Deno.test("stage sources: the real stages hash every kernel they run (incl. the tiled matmul real GPUs use)", () => {
  const perk = stageSources(new URL("../pipeline/perk/stages.ts", import.meta.url).href);
  const ft = stageSources(new URL("../pipeline/baselines/ft_icr/stages.ts", import.meta.url).href);
  const base = stageSources(new URL("../pipeline/base/base_stage.ts", import.meta.url).href);
  // What the hand-written lists held (they missed matmul_tiled.ts for PERK, among others).
  const mustHave = [
    "kernels/autodiff/attention.ts",
    "kernels/autodiff/tape.ts",
    "kernels/ops/attention/backward.ts",
    "kernels/ops/attention/forward.ts",
    "kernels/ops/attention/launch.ts",
    "kernels/ops/attention/mod.ts",
    "kernels/ops/attention/specs.ts",
    "kernels/ops/attention/subgroup.ts",
    "kernels/ops/attention/tangents.ts",
    "kernels/ops/attention/wgsl.ts",
    "kernels/ops/elementwise.ts",
    "kernels/ops/nn_kernels.ts",
    "kernels/ops/reduce.ts",
    "kernels/ops/strided.ts",
    "kernels/matmul/matmul.ts",
    "kernels/matmul/matmul_subgroup.ts",
    "kernels/matmul/matmul_tiled.ts",
    "pipeline/model/gpu_model.ts",
  ];
  for (const f of [...mustHave, "kernels/optim/adamw.ts", "pipeline/perk/metagrad.ts"]) {
    assert.ok(perk.includes(f), `perk stages miss ${f}`);
  }
  for (
    // The schedule FT-ICR shares with PERK's outer loop (once in pipeline/perk/outer_optim.ts).
    const f of [...mustHave, "pipeline/baselines/ft_icr/train.ts", "pipeline/train/schedule.ts"]
  ) {
    assert.ok(ft.includes(f), `ft-icr stages miss ${f}`);
  }
  for (
    const f of [...mustHave, "pipeline/base/pretrain.ts", "pipeline/base/pretrain_data.ts"]
  ) {
    assert.ok(base.includes(f), `pretrain stage misses ${f}`);
  }
  for (const l of [perk, ft, base]) {
    assert.ok(!l.some((f) => f.startsWith("pipeline/experiment/")), "machinery is not hashed");
  }
});
