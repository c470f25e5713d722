/**
 * Helpers every command-line tool shares.
 *
 * Paths a user types are relative to the directory they typed the command in. `deno task`
 * and `./perk` run from the repository root, so that directory comes as INIT_CWD (deno task
 * sets it; ./perk sets it before changing directory, and deno task keeps a value already set).
 */
import { isAbsolute, join } from "node:path";

/** The caller's working directory. */
export function callerDir(): string {
  return Deno.env.get("INIT_CWD") ?? Deno.cwd();
}

/** `p` resolved against the caller's directory (absolute paths as they are). */
export function callerPath(p: string): string {
  return isAbsolute(p) ? p : join(callerDir(), p);
}

/** A value that names a file or folder rather than a built-in name ("tiny", "sotu"). */
export function looksLikePath(v: string): boolean {
  return v.includes("/") || v.startsWith(".") || v.startsWith("~");
}

/**
 * `--n -3` as `--n=-3`: node:util's parseArgs takes a value starting with "-" for an option,
 * so a negative number would be refused with parser jargon instead of reaching the tool's own
 * check ("--n must be an integer ≥ 1").
 */
export function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], next = argv[i + 1];
    if (/^--[a-z][a-z-]*$/.test(a) && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}
