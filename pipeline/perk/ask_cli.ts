/**
 * `deno task ask --meta RUN_FOLDER|DIR --context FILE|- [--question Q …]`: PERK on your own
 * document. The document is encoded once by the meta-trained inner loop (ask.ts), then each
 * question is answered from the question alone; with no --question on a terminal it asks
 * interactively. `--save-adapter DIR` writes the adapted LoRA as a PEFT adapter.
 */
import { createRuntime } from "../../kernels/runtime/device.ts";
import { defaultCacheRoot, StageCache } from "../experiment/cache.ts";
import { TINY_BASE } from "../base/base_stage.ts";
import { loadModel } from "../model/load.ts";
import { Reader } from "./ask.ts";
import { loadMeta } from "./meta_source.ts";
import { callerPath, intFlag, parseFlags, UsageError } from "../cli_helpers.ts";

export const USAGE = `usage: deno task ask --meta RUN_FOLDER|DIR --context FILE|- [--question Q …]
                     [--model tiny|DIR] [--cell N] [--cache DIR] [--save-adapter DIR]
                     [--max-tokens N]

Reads a document the PERK way: encodes it into a LoRA adapter by the meta-trained inner loop
(its learned initial adapter, learning rates and token weighting), then answers each question
from the question alone. With no --question on a terminal, asks for questions until an empty
line.

  --meta PATH         a run folder of \`./perk experiment\` with PERK (runs/<experiment>/<run>;
                      its meta-training is read from the cache) or a folder written by
                      \`deno task export RUN --peft DIR\`
  --context FILE      the document (plain text, any length); "-" reads standard input
  --question Q        a question (repeat for several)
  --model tiny|DIR    the base (default: the one the PERK was meta-trained from)
  --cell N            which meta-training of a run that has several (they are listed)
  --cache DIR         the stage cache the run used (default: $PERK_CACHE or cache/)
  --save-adapter DIR  write the adapted LoRA as a PEFT adapter (\`generate --adapter DIR\`)
  --max-tokens N      new tokens per answer (default: the run's max_new_tokens)
  --help              this text
`;

export interface AskArgs {
  meta: string;
  context: string;
  questions: string[];
  model?: string;
  cell?: number;
  cache?: string;
  saveAdapter?: string;
  maxTokens?: number;
}

export function parseAskArgs(argv: string[]): AskArgs | "help" {
  const v = parseFlags(argv, {
    meta: { type: "string" },
    context: { type: "string" },
    question: { type: "string", multiple: true },
    model: { type: "string" },
    cell: { type: "string" },
    cache: { type: "string" },
    "save-adapter": { type: "string" },
    "max-tokens": { type: "string" },
    help: { type: "boolean" },
  }).values;
  if (v.help) return "help";
  if (!v.meta) throw new UsageError("--meta RUN_FOLDER|DIR is required");
  if (!v.context) throw new UsageError("--context FILE (or - for standard input) is required");
  return {
    meta: v.meta,
    context: v.context,
    questions: v.question ?? [],
    model: v.model,
    cell: intFlag("cell", v.cell, 0),
    cache: v.cache,
    saveAdapter: v["save-adapter"],
    maxTokens: intFlag("max-tokens", v["max-tokens"], 1),
  };
}

async function readContext(path: string): Promise<string> {
  if (path === "-") return await new Response(Deno.stdin.readable).text();
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`--context ${path}: ${(e as Error).message}`);
  }
}

function progressBar(write: (s: string) => void, tty: boolean) {
  let last = -1;
  return (done: number, total: number) => {
    const pct = Math.floor((100 * done) / total);
    if (tty) {
      const w = 30, fill = Math.round((w * done) / total);
      write(`\rencoding [${"#".repeat(fill)}${".".repeat(w - fill)}] ${done}/${total}`);
      if (done === total) write("\n");
    } else if (pct >= last + 25 || done === total) {
      last = pct;
      write(`encoding ${done}/${total}\n`);
    }
  };
}

/** The command: returns the exit status (0 ok, 1 bad input, 2 usage). */
export async function main(argv: string[]): Promise<number> {
  const enc = new TextEncoder();
  const write = (s: string) => Deno.stdout.writeSync(enc.encode(s));
  let a: AskArgs | "help";
  try {
    a = parseAskArgs(argv);
  } catch (e) {
    console.error(`ask: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (a === "help") {
    console.log(USAGE);
    return 0;
  }
  let reader: Reader | undefined;
  let rt: Awaited<ReturnType<typeof createRuntime>> | undefined;
  try {
    const cache = new StageCache(a.cache ? callerPath(a.cache) : defaultCacheRoot());
    const meta = await loadMeta(callerPath(a.meta), cache, a.cell);
    const text = await readContext(a.context === "-" ? "-" : callerPath(a.context));
    const base = a.model
      ? loadModel(a.model === "tiny" ? TINY_BASE.dir : callerPath(a.model))
      : undefined;
    rt = await createRuntime();
    reader = new Reader(rt, meta, base);
    write(`PERK from ${meta.origin}\n`);
    const tty = Deno.stdout.isTerminal();
    const e = await reader.encode(text, progressBar(write, tty));
    write(
      `encoded ${e.documents} documents (${e.tokens} tokens, N = ${meta.params.steps}) in ` +
        `${(e.ms / 1000).toFixed(1)} s\n`,
    );
    if (a.saveAdapter) {
      await reader.saveAdapter(
        callerPath(a.saveAdapter),
        "path" in meta.base ? meta.base.path : "",
      );
      write(`adapted LoRA written to ${a.saveAdapter} (PEFT; generate --adapter loads it)\n`);
    }
    const ask = async (q: string) => {
      const r = await reader!.answer(q, a.maxTokens);
      write(
        `Q: ${q}\nA: ${r.answer}${r.answer !== r.text ? `\n   (${r.text})` : ""}\n` +
          `   ${(r.ms / 1000).toFixed(2)} s\n`,
      );
    };
    for (const q of a.questions) await ask(q);
    if (!a.questions.length && a.context !== "-" && Deno.stdin.isTerminal()) {
      for (;;) {
        const q = prompt("question>");
        if (!q || !q.trim()) break;
        await ask(q.trim());
      }
    }
    return 0;
  } catch (e) {
    console.error(`ask: ${(e as Error).message}`);
    return 1;
  } finally {
    reader?.dispose();
    rt?.destroy();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
