/**
 * env.json of a run: Deno and Effect versions, the GPU adapter, the git commit and whether
 * the working tree had uncommitted changes — what someone needs to reproduce a number.
 */
import type { AdapterRecord } from "../../kernels/runtime/runtime.ts";

export interface GitInfo {
  readonly commit: string | null;
  readonly dirty: boolean | null;
  readonly error?: string;
}

const repoRoot = new URL("../../", import.meta.url).pathname;

async function git(args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd: repoRoot,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr).trim());
  return new TextDecoder().decode(out.stdout).trim();
}

/** Commit and dirty flag from a `git` subprocess (null with the reason when git fails). */
export async function gitInfo(): Promise<GitInfo> {
  try {
    const commit = await git(["rev-parse", "HEAD"]);
    const status = await git(["status", "--porcelain", "--untracked-files=no"]);
    return { commit, dirty: status.length > 0 };
  } catch (e) {
    return { commit: null, dirty: null, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Effect's version as pinned in deno.json ("npm:effect@4.1.0" → "4.1.0"). */
export function effectVersion(): string {
  try {
    const json = JSON.parse(Deno.readTextFileSync(`${repoRoot}deno.json`));
    return String(json.imports?.effect ?? "").replace(/^npm:effect@/, "") || "unknown";
  } catch {
    return "unknown";
  }
}

export async function collectEnv(adapter: AdapterRecord | null, argv: readonly string[]) {
  return {
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    effect: effectVersion(),
    os: Deno.build.os,
    arch: Deno.build.arch,
    adapter,
    git: await gitInfo(),
    argv,
    startedAt: new Date().toISOString(),
  };
}
