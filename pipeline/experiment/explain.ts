/**
 * `--explain`: why a node hits or misses. A miss is explained by the nearest cached entry of
 * the same stage — which parameters, upstream outputs, stage version or kernel sources
 * differ — so "why did this recompute?" has an answer without reading hashes.
 */
import type { EntryInfo, Lookup, StageCache } from "./cache.ts";
import type { PlannedNode } from "./graph.ts";
import { canonicalJson } from "./hash.ts";

const short = (key: string) => key.slice(0, 12);

/** Flatten a JSON value to path → canonical text, for readable diffs. */
function flatten(v: unknown, path: string, out: Map<string, string>): Map<string, string> {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) out.set(path, "{}");
    for (const [k, x] of entries) flatten(x, path ? `${path}.${k}` : k, out);
  } else {
    const text = canonicalJson(v);
    out.set(path, text.length > 40 ? `${text.slice(0, 37)}...` : text);
  }
  return out;
}

function mapDiff(
  what: string,
  cached: Map<string, string>,
  now: Map<string, string>,
  fmt: (v: string) => string = (v) => v,
): string[] {
  const out: string[] = [];
  for (const k of new Set([...cached.keys(), ...now.keys()])) {
    const a = cached.get(k), b = now.get(k);
    if (a === b) continue;
    const name = k ? `${what}.${k}` : what;
    if (a === undefined) out.push(`${name} added (${fmt(b!)})`);
    else if (b === undefined) out.push(`${name} removed (was ${fmt(a)})`);
    else out.push(`${name} ${fmt(a)} → ${fmt(b)}`);
  }
  return out;
}

/** How `p` differs from a cached entry of the same stage. */
export function describeDifference(cached: EntryInfo, p: PlannedNode): string[] {
  const diffs: string[] = [];
  if (cached.version !== p.node.stage.version) {
    diffs.push(`stage version ${cached.version} → ${p.node.stage.version}`);
  }
  diffs.push(
    ...mapDiff(
      "params",
      flatten(cached.params, "", new Map()),
      flatten(p.encodedParams, "", new Map()),
    ),
  );
  const up = (r: Readonly<Record<string, string>>) =>
    new Map(Object.entries(r).map(([k, v]) => [k, v]));
  diffs.push(...mapDiff("upstream", up(cached.upstream), up(p.upstream), short));
  diffs.push(
    ...mapDiff("kernel", up(cached.kernels ?? {}), up(p.kernels), (v) => `sha ${short(v)}`),
  );
  return diffs;
}

/** One line: why `p` hits or misses. */
export async function explainNode(
  cache: StageCache,
  p: PlannedNode,
  lookup: Lookup,
  forced: boolean,
): Promise<string> {
  if (forced) return "miss: --force " + p.node.stage.name;
  if (lookup.status === "hit") return "hit: cached output verified";
  if (lookup.status === "corrupt") return `miss: cached entry is corrupt (${lookup.reason})`;
  const others = (await cache.entriesOf(p.node.stage.name)).filter((e) => e.key !== p.key);
  if (others.length === 0) return `miss: no cached output of stage ${p.node.stage.name} yet`;
  let best: { e: EntryInfo; diffs: string[] } | undefined;
  for (const e of others) {
    const diffs = describeDifference(e, p);
    if (!best || diffs.length < best.diffs.length) best = { e, diffs };
  }
  const shown = best!.diffs.slice(0, 4).join("; ");
  const more = best!.diffs.length > 4 ? ` (+${best!.diffs.length - 4} more)` : "";
  return `miss: nearest cached ${p.node.stage.name} ${
    short(best!.e.key)
  } differs in ${shown}${more}`;
}
