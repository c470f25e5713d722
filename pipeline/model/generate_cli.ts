/**
 * `deno task generate --model PATH --prompt TEXT [--max-tokens N] [--adapter PATH]
 * [--tokenizer PATH] [--reference]`: greedy continuation of a prompt, printed to stdout as it
 * is generated. Runs on the GPU (gpu_model.ts + gpu_generate.ts: KV cache, argmax on the
 * device) by default; `--reference` runs the float64 CPU reference decoder instead.
 */
import { callerPath, intFlag, parseFlags, UsageError } from "../cli_helpers.ts";
import { createRuntime } from "../../kernels/runtime/device.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { ModelError } from "./errors.ts";
import { loadModel, loadTokenizerFor, promptIds } from "./load.ts";
import { type LoraParams, toReferenceLora } from "./lora.ts";
import { importPeft } from "./peft.ts";
import { generateGreedy } from "./reference.ts";
import type { Model } from "./weights.ts";
import { generateGreedyGpu } from "./gpu_generate.ts";
import { gpuLora, GpuModel, uploadLora } from "./gpu_model.ts";

export const USAGE = `usage: deno task generate --model PATH --prompt TEXT [--max-tokens N]
                          [--adapter DIR] [--tokenizer PATH]

Greedy continuation of TEXT, printed to stdout (stops at EOS or after N new tokens).
Runs on the GPU (WebGPU; Mesa lavapipe on a CPU-only machine) with a KV cache.

  --model PATH      a Hugging Face model directory (config.json + model.safetensors or a
                    sharded index; gpt2, qwen2, llama) or a llama2.c .bin checkpoint
  --prompt TEXT     the prompt (llama2.c and LLaMA models get BOS prepended)
  --max-tokens N    new tokens at most (default 64)
  --adapter DIR     a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)
  --tokenizer PATH  default: the model directory's tokenizer.json or compact_vocab.json, or
                    for a .bin the llama2.c tokenizer beside it (tok{vocab}.bin, tokenizer.bin)
  --reference       use the float64 CPU reference decoder instead of the GPU (exact, and
                    slow on big models: seconds per token at 0.5B parameters)
  --help            this text
`;

export { UsageError };

export interface GenerateArgs {
  model: string;
  prompt: string;
  maxTokens: number;
  adapter?: string;
  tokenizer?: string;
  /** Set (true) by --reference: the float64 CPU decoder; absent: the GPU. */
  reference?: true;
}

export function parseGenerateArgs(argv: string[]): GenerateArgs | "help" {
  const v = parseFlags(argv, {
    model: { type: "string" },
    prompt: { type: "string" },
    "max-tokens": { type: "string" },
    adapter: { type: "string" },
    tokenizer: { type: "string" },
    reference: { type: "boolean" },
    help: { type: "boolean" },
  }).values;
  if (v.help) return "help";
  if (!v.model) throw new UsageError("--model PATH is required");
  if (v.prompt === undefined) throw new UsageError("--prompt TEXT is required");
  return {
    model: v.model,
    prompt: v.prompt,
    maxTokens: intFlag("max-tokens", v["max-tokens"], 0) ?? 64,
    adapter: v.adapter,
    tokenizer: v.tokenizer,
    ...(v.reference ? { reference: true as const } : {}),
  };
}

interface Prepared {
  readonly model: Model;
  readonly tok: TextTokenizer;
  readonly lora: LoraParams | undefined;
  readonly prompt: number[];
  /** Feed each new token (undefined: the end, flush held-back text); returns the text so far. */
  readonly stream: (token: number | undefined) => string;
}

function prepare(a: GenerateArgs, write: (s: string) => void): Prepared {
  const path = callerPath(a.model);
  const model = loadModel(path);
  const tok = loadTokenizerFor(path, model, a.tokenizer && callerPath(a.tokenizer));
  const lora = a.adapter ? importPeft(callerPath(a.adapter), model.config) : undefined;
  const prompt = promptIds(model, tok, a.prompt);
  const room = model.config.maxPositions - prompt.length;
  if (a.maxTokens > room) {
    throw new ModelError(
      `--max-tokens ${a.maxTokens}: the prompt's ${prompt.length} tokens and ${a.maxTokens} new ` +
        `ones exceed the model's ${model.config.maxPositions} positions; give --max-tokens ` +
        `${Math.max(0, room)} or less`,
    );
  }
  const base = tok.decode(prompt);
  const out: number[] = [];
  let shown = "";
  const stream = (token: number | undefined) => {
    if (token !== undefined) out.push(token);
    const text = tok.decode([...prompt, ...out]).slice(base.length);
    // Hold back a partial UTF-8 character (decoded as U+FFFD) until its bytes are complete.
    const ready = token === undefined ? text : text.replace(/\uFFFD+$/, "");
    if (ready.length > shown.length && ready.startsWith(shown)) {
      write(ready.slice(shown.length));
      shown = ready;
    }
    return text;
  };
  return { model, tok, lora, prompt, stream };
}

/** Generate with the float64 reference and stream through `write`; returns the continuation. */
export function generateText(a: GenerateArgs, write: (s: string) => void = () => {}): string {
  const p = prepare(a, write);
  generateGreedy(p.model, p.prompt, {
    maxNewTokens: a.maxTokens,
    lora: p.lora && toReferenceLora(p.lora),
    onToken: (_, t) => p.stream(t),
  });
  return p.stream(undefined);
}

/** The same on the GPU (a runtime is created unless given; the model is uploaded per call). */
export async function generateTextGpu(
  a: GenerateArgs,
  write: (s: string) => void = () => {},
  runtime?: Awaited<ReturnType<typeof createRuntime>>,
): Promise<string> {
  const p = prepare(a, write);
  let rt = runtime;
  if (!rt) {
    try {
      rt = await createRuntime();
    } catch (e) {
      throw new ModelError(`no GPU: ${(e as Error).message}\n(or pass --reference for the CPU)`);
    }
  }
  const g = GpuModel.upload(rt, p.model);
  const loraT = p.lora ? uploadLora(rt, p.lora) : [];
  try {
    await generateGreedyGpu(g, [p.prompt], {
      maxNewTokens: a.maxTokens,
      lora: p.lora && gpuLora(p.lora.specs, loraT, p.lora.scale),
      onToken: (_, t) => p.stream(t),
    });
    return p.stream(undefined);
  } finally {
    loraT.forEach((t) => t.dispose());
    g.dispose();
    if (!runtime) rt.destroy();
  }
}

/** The command: returns the exit status (0 ok, 1 bad input, 2 usage). */
export async function main(argv: string[]): Promise<number> {
  const enc = new TextEncoder();
  try {
    const a = parseGenerateArgs(argv);
    if (a === "help") {
      console.log(USAGE);
      return 0;
    }
    const write = (s: string) => Deno.stdout.writeSync(enc.encode(s));
    if (a.reference) generateText(a, write);
    else await generateTextGpu(a, write);
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

if (import.meta.main) Deno.exit(await main(Deno.args));
