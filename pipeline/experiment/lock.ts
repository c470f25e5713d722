/**
 * Per-key compute locks, so that two runs of one experiment compute each stage once: the
 * first takes the key's lock and computes; the second waits and then takes the cached entry.
 *
 * The lock is an OS advisory lock (flock) on <cache>/locks/<key>.lock, so the kernel drops it
 * when its holder exits in any way — a run killed with SIGKILL blocks nobody — and no
 * /proc access or extra Deno permission is needed. Lock files are left in place (0–20
 * bytes): unlinking one that another process has open would let two holders coexist.
 * Correctness never depends on the lock (cache writes are atomic renames of identical
 * content); the lock only avoids duplicate work.
 */
import type { StageCache } from "./cache.ts";

export interface LockOptions {
  /** How often a waiter re-checks (ms). */
  readonly pollMs?: number;
}

export type LockOutcome =
  | { readonly kind: "acquired"; readonly release: () => Promise<void> }
  | { readonly kind: "done" };

/** The pid a holder wrote into its lock file (for the "waiting for run …" line). */
async function holderPid(path: string): Promise<number | undefined> {
  try {
    const n = Number((await Deno.readTextFile(path)).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Take the lock of `key`, or learn that another process finished it: waits while a holder
 * computes, calling `isDone` after each poll (true → `{kind: "done"}`).
 */
export async function lockOrWait(
  cache: StageCache,
  key: string,
  isDone: () => Promise<boolean>,
  options: LockOptions & { signal?: AbortSignal; onWait?: (pid: number | undefined) => void } = {},
): Promise<LockOutcome> {
  const { pollMs = 200 } = options;
  const path = cache.lockPath(key);
  await Deno.mkdir(`${cache.root}/locks`, { recursive: true });
  const file = await Deno.open(path, { read: true, write: true, create: true });
  let told = false;
  try {
    for (;;) {
      if (options.signal?.aborted) throw new Error("interrupted while waiting for a lock");
      if (await file.tryLock(true)) {
        await file.truncate(0);
        await file.write(new TextEncoder().encode(String(Deno.pid)));
        return {
          kind: "acquired",
          release: async () => {
            try {
              await file.unlock();
            } finally {
              file.close();
            }
          },
        };
      }
      if (await isDone()) {
        file.close();
        return { kind: "done" };
      }
      if (!told) {
        told = true;
        options.onWait?.(await holderPid(path));
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } catch (e) {
    file.close();
    throw e;
  }
}
