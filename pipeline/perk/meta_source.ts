/**
 * Where a meta-trained PERK comes from for `ask` and `export`: a run folder (its stages.json
 * names each perk-meta-train node; the output is read from the stage cache by key, so later
 * code changes do not hide it) or an exported folder (`deno task export RUN --peft DIR`:
 * perk_meta.json and perk_meta.safetensors beside a PEFT adapter of θ₀).
 */
import { Schema } from "effect";
import type { StageCache } from "../experiment/cache.ts";
import { readStages, type StageRecord } from "../experiment/run_dir.ts";
import { writeFileAtomic } from "../model/atomic.ts";
import { type BaseModel, pretrainStage, sha256File, TINY_BASE } from "../base/base_stage.ts";
import { exportPeft } from "../model/peft.ts";
import type { Model } from "../model/weights.ts";
import { loraFor, metaCodec, PerkParams } from "./stages.ts";
import type { MetaState } from "./train.ts";

/** A meta-trained PERK: its meta-parameters, how it was trained, and its base. */
export interface MetaTrainedPerk {
  readonly state: MetaState;
  readonly params: PerkParams;
  readonly base: BaseModel;
  /** Tokens per "Document i:" segment of its training contexts. */
  readonly segmentTokens: number;
  /** Where it was found, for messages. */
  readonly origin: string;
}

const EXPORT_JSON = "perk_meta.json", EXPORT_TENSORS = "perk_meta.safetensors";

const isDir = (p: string) => {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
};
const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

/** A run folder or an exported folder; `cell` picks one meta-training of a run with several. */
export async function loadMeta(
  path: string,
  cache: StageCache,
  cell?: number,
): Promise<MetaTrainedPerk> {
  if (!isDir(path)) {
    throw new Error(`--meta ${path}: not a folder (give a run folder or an export)`);
  }
  if (exists(`${path}/${EXPORT_JSON}`)) return metaFromExport(path);
  if (exists(`${path}/stages.json`)) return await metaFromRun(path, cache, cell);
  throw new Error(
    `--meta ${path}: neither a run folder (stages.json) nor an export (${EXPORT_JSON}); ` +
      "give runs/<experiment>/<run> or a folder written by `deno task export`",
  );
}

/** A short label of a meta-training node: task, training length, rank, N. */
function cellLabel(n: StageRecord, byKey: Map<string, StageRecord>): string {
  const train = byKey.get(n.upstream.train)?.params as
    | { task?: string; length?: string }
    | undefined;
  const p = n.params as { rank?: number; steps?: number; truncate?: number };
  return `${train?.task ?? "?"} @ ${train?.length ?? "?"} (rank ${p.rank}, N ${p.steps}, ` +
    `truncate ${p.truncate}; key ${n.key.slice(0, 12)})`;
}

export async function metaFromRun(
  runDir: string,
  cache: StageCache,
  cell?: number,
): Promise<MetaTrainedPerk> {
  const nodes = readStages(runDir);
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const metas = nodes.filter((n) => n.stage === "perk-meta-train");
  if (metas.length === 0) {
    throw new Error(`${runDir}: the run has no PERK meta-training (its methods have none)`);
  }
  const list = metas.map((m, i) => `  --cell ${i}: ${cellLabel(m, byKey)}`).join("\n");
  if (cell === undefined && metas.length > 1) {
    throw new Error(`${runDir}: the run meta-trained ${metas.length} PERKs; pick one:\n${list}`);
  }
  const i = cell ?? 0;
  if (!Number.isInteger(i) || i < 0 || i >= metas.length) {
    throw new Error(`--cell ${cell}: the run has cells 0..${metas.length - 1}:\n${list}`);
  }
  const node = metas[i];
  const lookup = await cache.lookup(node.key);
  if (lookup.status !== "hit") {
    throw new Error(
      `${runDir}: its meta-training ${node.key.slice(0, 12)} is ${
        lookup.status === "absent" ? "not in the cache" : `corrupt in the cache (${lookup.reason})`
      } at ${cache.root}; rerun the experiment with the run's config (--config ${runDir}/` +
        "config.yaml) or pass the cache it used with --cache",
    );
  }
  const { state } = metaCodec.decode(lookup.encoded);
  const params = decodeParams(node.params);
  const train = byKey.get(node.upstream.train)?.params as { segmentTokens?: number } | undefined;
  return {
    state,
    params,
    base: await baseOf(byKey.get(node.upstream.base), cache, runDir),
    segmentTokens: train?.segmentTokens ?? 256,
    origin: `${runDir}, ${cellLabel(node, byKey)}`,
  };
}

/** The base a run's meta-training started from. */
async function baseOf(
  n: StageRecord | undefined,
  cache: StageCache,
  runDir: string,
): Promise<BaseModel> {
  if (!n) throw new Error(`${runDir}/stages.json: the meta-training names no base node`);
  const p = n.params as { path?: string; sha256?: string };
  switch (n.stage) {
    case "base-path":
      return { path: p.path! };
    case "base-fixture": {
      const got = await sha256File(`${TINY_BASE.dir}/model.safetensors`);
      if (got !== p.sha256) {
        throw new Error(
          `${runDir}: the run used the shipped base ${p.sha256?.slice(0, 12)}, but ` +
            `${TINY_BASE.dir} now holds ${got.slice(0, 12)}; check out the base it ran with`,
        );
      }
      return { path: TINY_BASE.dir };
    }
    case "pretrain-base": {
      const lookup = await cache.lookup(n.key);
      if (lookup.status !== "hit") {
        throw new Error(`${runDir}: its pretrained base ${n.key.slice(0, 12)} is not in the cache`);
      }
      return pretrainStage.codec!.decode(lookup.encoded);
    }
    default:
      throw new Error(`${runDir}/stages.json: unknown base stage "${n.stage}"`);
  }
}

/**
 * A meta-training's parameters from a run's stages.json or an export; those written before the
 * weighting model's input was a choice read the adapted model (the paper's form).
 */
function decodeParams(raw: unknown): PerkParams {
  const withDefault = raw && typeof raw === "object" ? { weighting_input: "adapted", ...raw } : raw;
  return Schema.decodeUnknownSync(PerkParams)(withDefault);
}

/** Read a folder written by `writeExport`. */
export function metaFromExport(dir: string): MetaTrainedPerk {
  const j = JSON.parse(Deno.readTextFileSync(`${dir}/${EXPORT_JSON}`)) as {
    format?: string;
    params: unknown;
    segment_tokens: number;
    base: string;
    origin: string;
    n: number;
  };
  if (j.format !== "perk-meta/1") {
    throw new Error(`${dir}/${EXPORT_JSON}: format ${j.format} is not perk-meta/1`);
  }
  const bytes = Deno.readFileSync(`${dir}/${EXPORT_TENSORS}`);
  const params = decodeParams(j.params);
  const { state } = metaCodec.decode({
    json: { bestValLoss: null, history: [], n: j.n, weightsFrom: params.weighting_input },
    blobs: { "meta.safetensors": bytes },
  });
  return {
    state,
    params,
    base: { path: j.base },
    segmentTokens: j.segment_tokens,
    origin: `${dir} (exported from ${j.origin})`,
  };
}

/**
 * Write `m` into `dir`: θ₀ as a PEFT LoRA adapter (adapter_config.json,
 * adapter_model.safetensors: `generate --adapter DIR` and PEFT load it), and beside it the
 * learned rates and weighting model (perk_meta.safetensors, with θ₀ again in PERK's layout)
 * and how it was trained (perk_meta.json) — what `ask --meta DIR` reads.
 */
export function writeExport(dir: string, m: MetaTrainedPerk, base: Model): void {
  if (!("path" in m.base)) {
    throw new Error(
      "export: this PERK's base was pretrained inside its run and lives only in the cache; " +
        "use `ask --meta RUN_FOLDER`, or meta-train from a base on disk (base=fixture or a path)",
    );
  }
  const lora = loraFor(base, { ...m.params, dropout: 0 });
  const data = new Float32Array(lora.data.length);
  lora.specs.forEach((s, k) => data.set(m.state.theta0[k], s.offset));
  exportPeft(dir, base.config, { ...lora, data }, { baseModel: m.base.path });
  const encoded = metaCodec.encode({ state: m.state, bestValLoss: Infinity, history: [] });
  writeFileAtomic(`${dir}/${EXPORT_TENSORS}`, encoded.blobs!["meta.safetensors"]);
  writeFileAtomic(
    `${dir}/${EXPORT_JSON}`,
    JSON.stringify(
      {
        format: "perk-meta/1",
        params: Schema.encodeSync(PerkParams)(m.params),
        segment_tokens: m.segmentTokens,
        base: m.base.path,
        origin: m.origin,
        n: m.state.theta0.length,
      },
      null,
      2,
    ) + "\n",
  );
}
