/**
 * Model benchmarks: loading stories260K (llama2.c checkpoint read, q/k permutation to the
 * canonical layout, tokenizer parse). Skipped with a message when ../shared is absent.
 */
import { readLlama2c } from "../pipeline/model/llama2c.ts";
import { readLlama2cTokenizer } from "../pipeline/model/llama2c_tokenizer.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

const dir = new URL("../../shared/models/stories260K/", import.meta.url).pathname;
const present = (() => {
  try {
    Deno.statSync(`${dir}stories260K.bin`);
    return true;
  } catch {
    return false;
  }
})();

if (!present) console.error(`# skip load_stories260k: ${dir}stories260K.bin is absent`);

export const cases: PerfCase[] = present
  ? [{
    name: "load_stories260k",
    unit: "ms",
    run: () =>
      medianMs(() => {
        const m = readLlama2c(`${dir}stories260K.bin`);
        readLlama2cTokenizer(`${dir}tok512.bin`, m.config.vocab);
        return Promise.resolve();
      }, { runs: 7, warmup: 2 }),
  }]
  : [];
