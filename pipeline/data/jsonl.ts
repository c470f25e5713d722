/** JSON Lines: one JSON object per line, for inspection and reuse. */
import { DataInputError } from "./errors.ts";

export function toJsonl(rows: readonly unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");
}

export function parseJsonl<T = unknown>(text: string, where = "jsonl"): T[] {
  const out: T[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line) as T);
    } catch (e) {
      throw new DataInputError(`${where}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

export function writeJsonl(path: string, rows: readonly unknown[]): void {
  Deno.writeTextFileSync(path, toJsonl(rows));
}

export function readJsonl<T = unknown>(path: string): T[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new DataInputError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseJsonl<T>(text, path);
}
