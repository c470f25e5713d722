/**
 * `deno task export RUN_FOLDER --peft DIR [--cell N] [--cache DIR]`: a run's meta-trained PERK
 * as files: θ₀ as a PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors), the
 * learned rates and weighting model in perk_meta.safetensors and how it was trained in
 * perk_meta.json (meta_source.ts). `ask --meta DIR` and `generate --adapter DIR` read it.
 */
import { defaultCacheRoot, StageCache } from "../experiment/cache.ts";
import { resolveBase } from "../base/base_stage.ts";
import { metaFromRun, writeExport } from "./meta_source.ts";
import { callerPath, intFlag, parseFlags } from "../cli_helpers.ts";

export const USAGE = `usage: deno task export RUN_FOLDER --peft DIR [--cell N] [--cache DIR]

Writes a run's meta-trained PERK into DIR: its initial adapter θ₀ as a PEFT LoRA adapter
(PeftModel.from_pretrained and \`generate --adapter DIR\` load it), and beside it the learned
inner learning rates and token-weighting model (perk_meta.safetensors) with the training
parameters (perk_meta.json) that \`ask --meta DIR\` reads.

  RUN_FOLDER   runs/<experiment>/<run> of an experiment with PERK
  --peft DIR   where to write (created)
  --cell N     which meta-training of a run that has several (they are listed)
  --cache DIR  the stage cache the run used (default: $PERK_CACHE or cache/)
`;

export async function main(argv: string[]): Promise<number> {
  let v, run: string | undefined, cell: number | undefined;
  try {
    const r = parseFlags(argv, {
      peft: { type: "string" },
      cell: { type: "string" },
      cache: { type: "string" },
      help: { type: "boolean" },
    }, true);
    v = r.values;
    if (v.help) {
      console.log(USAGE);
      return 0;
    }
    if (r.positionals.length !== 1) throw new Error("give exactly one RUN_FOLDER");
    run = r.positionals[0];
    if (!v.peft) throw new Error("--peft DIR is required");
    cell = intFlag("cell", v.cell, 0);
  } catch (e) {
    console.error(`export: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  try {
    const cache = new StageCache(v.cache ? callerPath(v.cache) : defaultCacheRoot());
    const meta = await metaFromRun(callerPath(run), cache, cell);
    writeExport(callerPath(v.peft), meta, resolveBase(meta.base));
    console.log(`exported ${meta.origin} to ${v.peft}`);
    return 0;
  } catch (e) {
    console.error(`export: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
