/** SHA-256 and canonical JSON: the two ingredients of every cache key. */

const encoder = new TextEncoder();

/** Hex SHA-256 of bytes or a UTF-8 string. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * JSON with object keys sorted at every level, so that `{a, b}` and `{b, a}` hash alike.
 * Rejects values JSON cannot represent faithfully (NaN, functions, undefined in arrays),
 * because two different parameter sets must never share a key.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonicalise(value, "$"));
}

function canonicalise(v: unknown, path: string): unknown {
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`canonicalJson: ${path} is ${v}; use a finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => canonicalise(x, `${path}[${i}]`));
  if (typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonicalise(x, `${path}.${k}`);
    }
    return out;
  }
  throw new Error(`canonicalJson: ${path} is a ${typeof v}; parameters must be plain JSON`);
}
