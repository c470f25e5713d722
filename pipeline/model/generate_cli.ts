/**
 * `deno task generate --model PATH --prompt TEXT [--max-tokens N] [--adapter PATH]
 * [--tokenizer PATH]`: greedy continuation of a prompt, printed to stdout as it is generated.
 * Runs the float64 reference decoder (the GPU forward is not wired here yet).
 */
import { parseArgs } from "node:util";
import { ModelError } from "./errors.ts";
import { loadModel, loadTokenizerFor, promptIds } from "./load.ts";
import { toReferenceLora } from "./lora.ts";
import { importPeft } from "./peft.ts";
import { generateGreedy } from "./reference.ts";

export const USAGE = `usage: deno task generate --model PATH --prompt TEXT [--max-tokens N]
                          [--adapter DIR] [--tokenizer PATH]

Greedy continuation of TEXT, printed to stdout (stops at EOS or after N new tokens).
Runs the float64 CPU reference decoder: exact, and slow on big models (seconds per
token at 0.5B parameters).

  --model PATH      a Hugging Face model directory (config.json + model.safetensors or a
                    sharded index; gpt2, qwen2, llama) or a llama2.c .bin checkpoint
  --prompt TEXT     the prompt (llama2.c and LLaMA models get BOS prepended)
  --max-tokens N    new tokens at most (default 64)
  --adapter DIR     a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)
  --tokenizer PATH  default: the model directory's tokenizer.json or compact_vocab.json, or
                    for a .bin the llama2.c tokenizer beside it (tok{vocab}.bin, tokenizer.bin)
  --help            this text
`;

export class UsageError extends Error {}

export interface GenerateArgs {
  model: string;
  prompt: string;
  maxTokens: number;
  adapter?: string;
  tokenizer?: string;
}

export function parseGenerateArgs(argv: string[]): GenerateArgs | "help" {
  let v;
  try {
    v = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        prompt: { type: "string" },
        "max-tokens": { type: "string" },
        adapter: { type: "string" },
        tokenizer: { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (v.help) return "help";
  if (!v.model) throw new UsageError("--model PATH is required");
  if (v.prompt === undefined) throw new UsageError("--prompt TEXT is required");
  const maxTokens = v["max-tokens"] === undefined ? 64 : Number(v["max-tokens"]);
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new UsageError(`--max-tokens must be an integer ≥ 0, got ${v["max-tokens"]}`);
  }
  return {
    model: v.model,
    prompt: v.prompt,
    maxTokens,
    adapter: v.adapter,
    tokenizer: v.tokenizer,
  };
}

/** Generate and stream the continuation through `write`; returns the whole continuation. */
export function generateText(a: GenerateArgs, write: (s: string) => void = () => {}): string {
  const model = loadModel(a.model);
  const tok = loadTokenizerFor(a.model, model, a.tokenizer);
  const lora = a.adapter ? toReferenceLora(importPeft(a.adapter, model.config)) : undefined;
  const prompt = promptIds(model, tok, a.prompt);
  const base = tok.decode(prompt);
  const out: number[] = [];
  let shown = "";
  const show = (final: boolean) => {
    const text = tok.decode([...prompt, ...out]).slice(base.length);
    // Hold back a partial UTF-8 character (decoded as U+FFFD) until its bytes are complete.
    const ready = final ? text : text.replace(/\uFFFD+$/, "");
    if (ready.length > shown.length && ready.startsWith(shown)) {
      write(ready.slice(shown.length));
      shown = ready;
    }
  };
  generateGreedy(model, prompt, {
    maxNewTokens: a.maxTokens,
    lora,
    onToken: (_, t) => {
      out.push(t);
      show(false);
    },
  });
  show(true);
  return tok.decode([...prompt, ...out]).slice(base.length);
}

/** The command: returns the exit status (0 ok, 1 bad input, 2 usage). */
export function main(argv: string[]): number {
  const enc = new TextEncoder();
  try {
    const a = parseGenerateArgs(argv);
    if (a === "help") {
      console.log(USAGE);
      return 0;
    }
    generateText(a, (s) => Deno.stdout.writeSync(enc.encode(s)));
    Deno.stdout.writeSync(enc.encode("\n"));
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`generate: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof ModelError) {
      console.error(`generate: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) Deno.exit(main(Deno.args));
