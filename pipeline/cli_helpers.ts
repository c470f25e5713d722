/**
 * Helpers every command-line tool shares.
 *
 * Paths a user types are relative to the directory they typed the command in. `deno task`
 * and `./perk` run from the repository root, so that directory comes as INIT_CWD (deno task
 * sets it; ./perk sets it before changing directory, and deno task keeps a value already set).
 */
import { isAbsolute, join } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** A command-line mistake: the tool prints it above its usage text and exits with 2. */
export class UsageError extends Error {}

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

/**
 * The flags of `argv` (node:util's parseArgs): negative values joined to their option
 * (`joinNegativeValues`), unknown options refused, and the parser's complaints as UsageErrors.
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  argv: readonly string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: joinNegativeValues(argv), options, strict: true, allowPositionals });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

/** An integer flag's value ≥ `min` (undefined when the flag is absent), else a UsageError. */
export function intFlag(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${raw}`);
  }
  return n;
}
