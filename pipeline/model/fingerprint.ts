/**
 * A model's content fingerprint for cache keys: SHA-256 over its files (config, tokenizer,
 * weights — every regular file of a model folder; a llama2.c .bin with the tokenizer files
 * beside it), so weights rewritten in place are not served from an old cache entry. Hashing
 * streams each file once; the result is remembered by path, size and mtime in
 * `<cache>/model-hashes.json`, so a 1 GB model costs seconds once, then nothing.
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";

interface Memo {
  [key: string]: string;
}

const CHUNK = 8 << 20;

function hashFile(path: string, into: ReturnType<typeof createHash>): void {
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(CHUNK);
    for (;;) {
      const n = f.readSync(buf);
      if (n === null || n === 0) break;
      into.update(buf.subarray(0, n));
    }
  } finally {
    f.close();
  }
}

/** The files that make up the model at `path` (sorted), or undefined when it does not exist. */
export function modelFiles(path: string): string[] | undefined {
  let st;
  try {
    st = Deno.statSync(path);
  } catch {
    return undefined;
  }
  if (st.isDirectory) {
    return [...Deno.readDirSync(path)]
      .filter((e) => e.isFile && !e.name.startsWith("."))
      .map((e) => join(path, e.name))
      .sort();
  }
  const dir = dirname(path);
  const toks = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && /^tok.*\.bin$|^tokenizer/.test(e.name))
    .map((e) => join(dir, e.name));
  return [path, ...toks.filter((t) => t !== path)].sort();
}

/**
 * "sha256:<hex>" of the model's files (names and bytes), or "missing" for a path that does
 * not exist (loading it fails later, with the loader's message).
 */
export function modelFingerprint(path: string, memoPath?: string): string {
  const files = modelFiles(path);
  if (!files) return "missing";
  const stamp = files.map((f) => {
    const s = Deno.statSync(f);
    return `${f}:${s.size}:${s.mtime?.getTime() ?? 0}`;
  }).join("|");
  let memo: Memo = {};
  if (memoPath) {
    try {
      memo = JSON.parse(Deno.readTextFileSync(memoPath));
    } catch { /* no memo yet, or unreadable: hash again */ }
    if (memo[stamp]) return memo[stamp];
  }
  const h = createHash("sha256");
  for (const f of files) {
    h.update(`${basename(f)}\0`);
    hashFile(f, h);
  }
  const out = `sha256:${h.digest("hex")}`;
  if (memoPath) {
    try {
      Deno.mkdirSync(dirname(memoPath), { recursive: true });
      const tmp = `${memoPath}.tmp-${Deno.pid}`;
      // Entries of models that no longer exist are dropped (temporary test models).
      const kept = Object.entries(memo).filter(([k]) => {
        try {
          Deno.statSync(k.split("|")[0].replace(/:\d+:\d+$/, ""));
          return true;
        } catch {
          return false;
        }
      });
      Deno.writeTextFileSync(tmp, JSON.stringify(Object.fromEntries([...kept, [stamp, out]])));
      Deno.renameSync(tmp, memoPath);
    } catch { /* the memo only saves time */ }
  }
  return out;
}
