/**
 * Layering rules read from the sources: kernels/ (runtime, ops, autodiff, optimisers) never
 * imports pipeline/ or experiments/, and pipeline/ never imports experiments/ — the library
 * does not reach up into what uses it.
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
