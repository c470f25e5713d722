/**
 * Which source files a stage's output depends on, for its cache key (stage.ts `kernels`).
 *
 * A hand-written list goes stale: the PERK stages' list once lacked the tiled matmul that every
 * real GPU runs, so editing it would have served old results from the cache. `importClosure`
 * derives the list from the code itself: the entry modules and every repository module they
 * import, transitively. Static `import`/`export … from` and string-literal `import("…")` count;
 * type-only imports do not (they vanish at run time). The experiment machinery itself (cache,
 * reports, CLI: `pipeline/experiment/`) is left out by default, since it does not change what
 * a stage computes.
 */

const repoRoot = new URL("../../", import.meta.url);

// `import x from "…"`, `import {a} from "…"`, `export * from "…"`, `import "…"`; the `type`
// forms are matched separately and skipped.
const STATIC = /^\s*(?:import|export)\s+(type\s+)?(?:[^"';]*?\sfrom\s*)?["']([^"']+)["']/gm;
const DYNAMIC = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Repository-relative specifiers a module's text imports at run time (relative ones only). */
export function runtimeImports(text: string): string[] {
  const out: string[] = [];
  for (const [, typeOnly, spec] of text.matchAll(STATIC)) if (!typeOnly) out.push(spec);
  for (const m of text.matchAll(DYNAMIC)) out.push(m[1]);
  return out.filter((s) => s.startsWith("./") || s.startsWith("../"));
}

export interface ClosureOptions {
  /** Path prefixes whose modules are neither listed nor followed. */
  readonly exclude?: readonly string[];
  /** Repository root (tests point it at a temporary tree). */
  readonly root?: URL;
  /** Reads a module's text (default: the file system). */
  readonly read?: (url: URL) => string;
}

/**
 * `entries` (repository-relative .ts paths) and every module they import at run time,
 * transitively, as sorted repository-relative paths. A missing module is an error that names
 * the importer, so a typo cannot silently shrink a stage's key.
 */
export function importClosure(entries: readonly string[], o: ClosureOptions = {}): string[] {
  const root = o.root ?? repoRoot;
  const exclude = o.exclude ?? ["pipeline/experiment/"];
  const read = o.read ?? ((u: URL) => Deno.readTextFileSync(u));
  const seen = new Set<string>();
  const todo: { path: string; from: string }[] = entries.map((p) => ({ path: p, from: "(entry)" }));
  while (todo.length) {
    const { path, from } = todo.pop()!;
    if (seen.has(path) || exclude.some((x) => path.startsWith(x))) continue;
    const url = new URL(path, root);
    let text: string;
    try {
      text = read(url);
    } catch {
      throw new Error(`source closure: "${path}" (imported by ${from}) cannot be read`);
    }
    seen.add(path);
    for (const spec of runtimeImports(text)) {
      const dep = new URL(spec, url);
      if (!dep.href.startsWith(root.href)) continue; // outside the repository
      todo.push({ path: dep.href.slice(root.href.length), from: path });
    }
  }
  return [...seen].sort();
}

/**
 * The sources behind the stages defined in the module at `moduleUrl` (pass `import.meta.url`):
 * that module's import closure.
 */
export function stageSources(moduleUrl: string, o: ClosureOptions = {}): string[] {
  const root = o.root ?? repoRoot;
  if (!moduleUrl.startsWith(root.href)) {
    throw new Error(`stage sources: ${moduleUrl} is outside the repository ${root.href}`);
  }
  return importClosure([moduleUrl.slice(root.href.length)], o);
}
