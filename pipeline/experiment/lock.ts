/**
 * Per-key compute locks, so that two runs of one experiment compute each stage once: the
 * first takes the key's lock and computes; the second waits and then takes the cached entry.
 *
 * Correctness never depends on the lock (cache writes are atomic renames of identical
 * content); the lock only avoids duplicate work. A lock is stale when its holder is gone:
 * on the same machine (same boot id) when its pid no longer exists — so a run killed with
 * SIGKILL blocks nobody — and otherwise when its heartbeat is older than `staleMs`.
 */
import type { StageCache } from "./cache.ts";

export interface LockOptions {
  /** How often a waiter re-checks (ms). */
  readonly pollMs?: number;
  /** A holder on another machine is presumed dead after this long without heartbeat (ms). */
  readonly staleMs?: number;
  /** How often a holder refreshes its lock file's mtime (ms). */
  readonly heartbeatMs?: number;
}

interface Holder {
  readonly pid: number;
  readonly bootId: string;
  readonly startedAt: string;
}

export type LockOutcome =
  | { readonly kind: "acquired"; readonly release: () => Promise<void> }
  | { readonly kind: "done" };

let bootIdCache: string | undefined;
/** Lock files this process holds (a lock naming our pid but not in here was leaked). */
const held = new Set<string>();

/** Linux boot id ("" elsewhere): tells whether a lock's pid is a pid of this machine now. */
function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = Deno.readTextFileSync("/proc/sys/kernel/random/boot_id").trim();
    } catch {
      bootIdCache = "";
    }
  }
  return bootIdCache;
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Create the lock file with its content in one step (link fails if it exists). */
async function tryCreate(path: string): Promise<boolean> {
  const holder: Holder = { pid: Deno.pid, bootId: bootId(), startedAt: new Date().toISOString() };
  const tmp = `${path}.${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(holder));
  try {
    await Deno.link(tmp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

async function readHolder(path: string): Promise<{ holder?: Holder; mtime: number } | undefined> {
  try {
    const [text, stat] = await Promise.all([Deno.readTextFile(path), Deno.stat(path)]);
    let holder: Holder | undefined;
    try {
      holder = JSON.parse(text);
    } catch { /* unreadable holder: judged by mtime alone */ }
    return { holder, mtime: stat.mtime?.getTime() ?? 0 };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function isStale(path: string, h: { holder?: Holder; mtime: number }, staleMs: number): boolean {
  const local = h.holder && h.holder.bootId !== "" && h.holder.bootId === bootId();
  if (local && h.holder!.pid === Deno.pid) return !held.has(path);
  if (local) return !pidAlive(h.holder!.pid);
  return Date.now() - h.mtime > staleMs;
}

/** Remove a stale lock; rename first so that we never delete a lock someone just took. */
async function steal(path: string, judged: { holder?: Holder }): Promise<void> {
  const aside = `${path}.stale-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.rename(path, aside);
  } catch {
    return; // someone else removed or replaced it first
  }
  const now = await readHolder(aside);
  const same = now?.holder?.startedAt === judged.holder?.startedAt &&
    now?.holder?.pid === judged.holder?.pid;
  if (!same) {
    // We moved a fresh lock aside: put it back unless yet another one exists now.
    await Deno.link(aside, path).catch(() => {});
  }
  await Deno.remove(aside).catch(() => {});
}

/**
 * Take the lock of `key`, or learn that another process finished it: waits while a live
 * holder computes, calling `isDone` after each poll (true → `{kind: "done"}`).
 */
export async function lockOrWait(
  cache: StageCache,
  key: string,
  isDone: () => Promise<boolean>,
  options: LockOptions & { signal?: AbortSignal; onWait?: (pid: number) => void } = {},
): Promise<LockOutcome> {
  const { pollMs = 200, staleMs = 10 * 60_000, heartbeatMs = 5_000 } = options;
  const path = cache.lockPath(key);
  await Deno.mkdir(`${cache.root}/locks`, { recursive: true });
  let told = false;
  for (;;) {
    if (options.signal?.aborted) throw new Error("interrupted while waiting for a lock");
    if (await tryCreate(path)) {
      held.add(path);
      const beat = setInterval(() => {
        const now = new Date();
        Deno.utime(path, now, now).catch(() => {});
      }, heartbeatMs);
      return {
        kind: "acquired",
        release: async () => {
          clearInterval(beat);
          held.delete(path);
          await Deno.remove(path).catch(() => {});
        },
      };
    }
    const h = await readHolder(path);
    if (h && isStale(path, h, staleMs)) {
      await steal(path, h);
      continue;
    }
    if (await isDone()) return { kind: "done" };
    if (h?.holder && !told) {
      told = true;
      options.onWait?.(h.holder.pid);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
