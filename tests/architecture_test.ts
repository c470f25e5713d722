/**
 * Layering rules read from the sources: kernels/ (runtime, ops, autodiff, optimisers) never
 * imports pipeline/ or experiments/, pipeline/ never imports experiments/ — the library does
 * not reach up into what uses it — the model library never imports the tiny base's production
 * (pipeline/base/), the baselines never import PERK (pipeline/perk/), and no modules import
 * each other in a cycle (type-only imports aside).
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url).pathname;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${root}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(`${root}${file}`);
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s+"([^"]+)"/g)].map((m) => m[1]);
}

Deno.test("layers: kernels/ imports neither pipeline/ nor experiments/; pipeline/ not experiments/", () => {
  const bad: string[] = [];
  for (const f of sources("kernels")) {
    for (const i of importsOf(f)) {
      if (/(^|\/)(pipeline|experiments)\//.test(i)) bad.push(`${f} imports ${i}`);
    }
  }
  for (const f of sources("pipeline")) {
    for (const i of importsOf(f)) if (/(^|\/)experiments\//.test(i)) bad.push(`${f} imports ${i}`);
  }
  assert.deepEqual(bad, []);
});

Deno.test("layers: pipeline/baselines/ imports nothing from pipeline/perk/ or experiments/", () => {
  // The baselines are PERK's comparison: what they share with it (the training loop, its
  // schedule) lives below both, in pipeline/train/ and kernels/.
  const bad: string[] = [];
  for (const f of sources("pipeline/baselines")) {
    for (const i of importsOf(f)) {
      const to = new URL(i, `file:///${f}`).pathname.slice(1);
      if (/^(pipeline\/perk|experiments)\//.test(to)) bad.push(`${f} imports ${i}`);
    }
  }
  assert.deepEqual(bad, []);
});

Deno.test("layers: pipeline/model/ does not import pipeline/base/; no import cycles", () => {
  const bad: string[] = [];
  for (const f of sources("pipeline/model")) {
    if (f.endsWith("/mod.ts")) continue;
    for (const i of importsOf(f)) if (/(^|\/)base\//.test(i)) bad.push(`${f} imports ${i}`);
  }
  assert.deepEqual(bad, []);
  // Value imports (not `import type`) between repository modules, then a depth-first search.
  const files = [...sources("kernels"), ...sources("pipeline"), ...sources("experiments")];
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = Deno.readTextFileSync(`${root}${f}`);
    const deps = [
      ...text.matchAll(/(?:^|\n)\s*(import|export)(?!\s+type\b)[^;]*?from\s+"(\.[^"]+)"/g),
    ]
      .map((m) => new URL(m[2], `file:///${f}`).pathname.slice(1));
    graph.set(f, deps.filter((d) => files.includes(d)));
  }
  const state = new Map<string, 1 | 2>(), cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 2) return;
    if (state.get(f) === 1) {
      cycles.push([...path.slice(path.indexOf(f)), f].join(" → "));
      return;
    }
    state.set(f, 1);
    for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, 2);
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});
