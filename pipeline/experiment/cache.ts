/**
 * The content-addressed stage cache.
 *
 *   <root>/objects/<sha256>          blobs, named by the hash of their bytes
 *   <root>/entries/<key>.json        manifest: stage, params, upstream keys, kernel hashes,
 *                                    output JSON, blob hashes, the stage's metric records,
 *                                    and a checksum over all of it
 *   <root>/stages/<stage>/<key>.json what each entry was computed from (for --explain only)
 *   <root>/scratch/<key>/            partial progress of a stage that has not finished
 *   <root>/locks/<key>.lock          held while one process computes the key (lock.ts)
 *
 * Every file is written to a unique temp name and renamed into place, so a reader sees either
 * nothing or a whole file, and two processes writing the same key cannot interleave. Reads
 * verify the manifest checksum and every blob hash; anything that fails is reported as
 * corrupt (the runner warns and recomputes) rather than trusted.
 */
import { canonicalJson, sha256Hex } from "./hash.ts";
import type { KeyParts } from "./graph.ts";
import type { Encoded } from "./stage.ts";

/** Where the cache lives: $PERK_CACHE, else cache/ at the repository root. */
export function defaultCacheRoot(): string {
  const env = Deno.env.get("PERK_CACHE");
  if (env) return env;
  return new URL("../../cache", import.meta.url).pathname;
}

/** What an output was computed from (all of it is checksummed in the manifest). */
export interface EntryInfo extends KeyParts {
  readonly key: string;
}

/** A metric record a stage emitted while computing (replayed into later runs' metrics). */
export type MetricRecord = Readonly<Record<string, unknown>>;

interface Manifest extends EntryInfo {
  readonly json: unknown;
  readonly blobs: Record<string, { sha256: string; bytes: number }>;
  readonly metrics: MetricRecord[];
  readonly checksum: string;
}

export type Lookup =
  | { readonly status: "hit"; readonly encoded: Encoded; readonly metrics: MetricRecord[] }
  | { readonly status: "absent" }
  | { readonly status: "corrupt"; readonly reason: string };

let tempCounter = 0;

/** Write `bytes` to `path` atomically (unique temp file in the same folder, then rename). */
export async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${Deno.pid}-${++tempCounter}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** `writeAtomic` for text. */
export function writeTextAtomic(path: string, text: string): Promise<void> {
  return writeAtomic(path, enc.encode(text));
}

const enc = new TextEncoder();

export class StageCache {
  constructor(readonly root: string = defaultCacheRoot()) {}

  entryPath(key: string): string {
    return `${this.root}/entries/${key}.json`;
  }
  objectPath(hash: string): string {
    return `${this.root}/objects/${hash}`;
  }
  scratchPath(key: string): string {
    return `${this.root}/scratch/${key}`;
  }
  infoDir(stage: string): string {
    return `${this.root}/stages/${stage}`;
  }
  lockPath(key: string): string {
    return `${this.root}/locks/${key}.lock`;
  }

  async lookup(key: string): Promise<Lookup> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.entryPath(key));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { status: "absent" };
      throw e;
    }
    let manifest: Manifest;
    try {
      manifest = JSON.parse(text);
    } catch {
      return { status: "corrupt", reason: "manifest is not valid JSON" };
    }
    if (!manifest || typeof manifest !== "object" || typeof manifest.blobs !== "object") {
      return { status: "corrupt", reason: "manifest has no blob table" };
    }
    const { checksum, ...body } = manifest;
    if (checksum !== await sha256Hex(canonicalJson(body))) {
      return { status: "corrupt", reason: "manifest checksum mismatch" };
    }
    if (manifest.key !== key) return { status: "corrupt", reason: "manifest names another key" };
    const blobs: Record<string, Uint8Array> = {};
    for (const [name, ref] of Object.entries(manifest.blobs)) {
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(this.objectPath(ref.sha256));
      } catch {
        return { status: "corrupt", reason: `blob "${name}" is missing` };
      }
      if (bytes.length !== ref.bytes || await sha256Hex(bytes) !== ref.sha256) {
        return { status: "corrupt", reason: `blob "${name}" does not match its hash` };
      }
      blobs[name] = bytes;
    }
    return { status: "hit", encoded: { json: manifest.json, blobs }, metrics: manifest.metrics };
  }

  /** Store an output: blobs first, then the manifest (its rename is the commit point). */
  async write(info: EntryInfo, encoded: Encoded, metrics: MetricRecord[] = []): Promise<void> {
    await Deno.mkdir(`${this.root}/objects`, { recursive: true });
    await Deno.mkdir(`${this.root}/entries`, { recursive: true });
    const blobs: Manifest["blobs"] = {};
    for (const [name, bytes] of Object.entries(encoded.blobs ?? {})) {
      const hash = await sha256Hex(bytes);
      blobs[name] = { sha256: hash, bytes: bytes.length };
      await writeAtomic(this.objectPath(hash), bytes);
    }
    const body = { ...info, json: encoded.json ?? null, blobs, metrics };
    // Round-trip through canonical JSON so the checksum is over exactly what is stored.
    const canonical = canonicalJson(body);
    const manifest = { ...JSON.parse(canonical), checksum: await sha256Hex(canonical) };
    await writeAtomic(this.entryPath(info.key), enc.encode(JSON.stringify(manifest)));
    // Advisory record for --explain; written after the commit point, so it never vouches
    // for an entry that does not exist.
    await Deno.mkdir(this.infoDir(info.stage), { recursive: true });
    await writeTextAtomic(
      `${this.infoDir(info.stage)}/${info.key}.json`,
      JSON.stringify({ ...JSON.parse(canonicalJson(info)), createdAt: new Date().toISOString() }),
    );
  }

  /** What the cached entries of `stage` were computed from (newest first; for --explain). */
  async entriesOf(stage: string): Promise<(EntryInfo & { createdAt: string })[]> {
    const out: (EntryInfo & { createdAt: string })[] = [];
    try {
      for await (const e of Deno.readDir(this.infoDir(stage))) {
        if (!e.isFile || !e.name.endsWith(".json")) continue;
        try {
          out.push(JSON.parse(await Deno.readTextFile(`${this.infoDir(stage)}/${e.name}`)));
        } catch { /* advisory only: skip unreadable records */ }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Remove an entry's manifest (e.g. before recomputing a corrupt one). */
  async drop(key: string): Promise<void> {
    await Deno.remove(this.entryPath(key)).catch(() => {});
  }

  /** Create (if needed) and return the stage's scratch folder. */
  async scratch(key: string): Promise<string> {
    const path = this.scratchPath(key);
    await Deno.mkdir(path, { recursive: true });
    return path;
  }

  async clearScratch(key: string): Promise<void> {
    await Deno.remove(this.scratchPath(key), { recursive: true }).catch(() => {});
  }
}
