/**
 * The base model as an experiment input, shared by every method (PERK, FT-ICR, prompt-only):
 * `model = "tiny"` is the tiny default base pretrained here (stage `pretrain-base`, cached by
 * its parameters, checkpointed in the stage's scratch folder); anything else is a model path
 * (Hugging Face directory or llama2.c .bin) loaded where it is used — not copied into the cache.
 */
import { Effect, Schema } from "effect";
import { Gpu } from "../../kernels/runtime/gpu.ts";
import { defineStage, type OutputCodec } from "../experiment/stage.ts";
import { StageError } from "../experiment/errors.ts";
import { deviceWork } from "../experiment/gpu_work.ts";
import { UNIT } from "../experiment/cost.ts";
import { defaultCacheRoot } from "../experiment/cache.ts";
import { modelFingerprint } from "../model/fingerprint.ts";
import { stageSources } from "../experiment/sources.ts";
import { type Node, node } from "../experiment/graph.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { encodeSafetensors, SafetensorsReader } from "../model/safetensors.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Model, Weights } from "../model/weights.ts";
import { pretrain, PRETRAIN_DEFAULTS, type PretrainProfile } from "./pretrain.ts";
import { CompactTokenizer } from "../tokenizer/compact_vocab.ts";
import { tinyVocab } from "./pretrain_data.ts";
import { loadModel, loadTokenizerFor } from "../model/load.ts";

export const PretrainParams = Schema.Struct({
  profile: Schema.Literals(["tiny", "cpu", "micro"]),
  steps: Schema.Int,
  seed: Schema.Int,
});
export type PretrainParams = typeof PretrainParams.Type;

/** A pretrained model, or where to load one. */
export type BaseModel = { readonly model: Model } | { readonly path: string };

const modelCodec: OutputCodec<BaseModel> = {
  encode: (b) => {
    if ("path" in b) return { json: { path: b.path } };
    return {
      json: { config: b.model.config, names: [...b.model.weights.keys()] },
      blobs: { "weights.safetensors": encodeSafetensors(b.model.weights) },
    };
  },
  decode: (e) => {
    const j = e.json as { path?: string; config?: ModelConfig; names?: string[] };
    if (j.path) return { path: j.path };
    const tmp = Deno.makeTempFileSync({ suffix: ".safetensors" });
    try {
      Deno.writeFileSync(tmp, e.blobs!["weights.safetensors"]);
      const r = new SafetensorsReader(tmp);
      const weights: Weights = new Map(j.names!.map((n) => [n, r.read(n)]));
      r.close();
      return { model: { config: j.config!, weights } };
    } finally {
      Deno.removeSync(tmp);
    }
  },
};

export const pretrainStage = defineStage({
  name: "pretrain-base",
  version: 1,
  params: PretrainParams,
  kernels: stageSources(import.meta.url),
  codec: modelCodec,
  // 4 windows of 256 tokens a step (PRETRAIN_DEFAULTS); the tiny profile costs 2.9× the cpu one.
  estimate: (p) =>
    p.profile === "micro" ? undefined : p.steps * PRETRAIN_DEFAULTS.rows *
      PRETRAIN_DEFAULTS.seqLen / UNIT.pretrainTokensPerS * (p.profile === "tiny" ? 2.9 : 1),
  run: (p, _inputs: Record<string, never>, ctx) =>
    Effect.gen(function* () {
      const rt = yield* Gpu;
      // pretrain() holds its model and releases it when it returns or throws; deviceWork
      // waits for that after an interrupt.
      return yield* deviceWork("pretrain-base", async (signal): Promise<BaseModel> => {
        const r = await pretrain(rt, {
          profile: p.profile as PretrainProfile,
          steps: p.steps,
          seed: p.seed,
          checkpoint: { dir: `${ctx.scratch}/pretrain`, every: 25 },
          signal,
        }, (s) => {
          ctx.progress(s.step, s.steps);
          if (s.step % 10 === 0 || s.step === s.steps) {
            ctx.metric({
              stage: "pretrain-base",
              step: s.step,
              loss: s.loss,
              tok_s: s.tokensPerSecond,
            });
          }
        });
        ctx.log(
          `pretrain-base: eval loss ${r.evalLossStart.toFixed(3)} → ${r.evalLossEnd.toFixed(3)}, ` +
            `${r.tokens} tokens, ${r.tokensPerSecond.toFixed(0)} tok/s`,
        );
        return { model: { config: r.config, weights: r.weights } };
      });
    }),
});

const pathStage = defineStage({
  name: "base-path",
  // 2: the model's content fingerprint is a parameter (weights rewritten in place re-run).
  version: 2,
  params: Schema.Struct({ path: Schema.String, content: Schema.String }),
  codec: modelCodec,
  estimate: () => 0,
  run: (p) => Effect.succeed({ path: p.path } as BaseModel),
});

/**
 * The shipped tiny base (fixtures/models/tiny-base): a cpu-profile model pretrained once, for
 * longer than an experiment can afford, on the project's pretraining windows plus in-context
 * QA windows (bench/torch_perk.py; fixtures/models/tiny-base/README.md has the command that
 * rebuilds it and its measurements). Loaded by path; its weights' hash is checked on load,
 * and the hash is in the stage's parameters, so a rebuilt base re-runs everything after it.
 */
export const TINY_BASE = {
  dir: new URL("../../fixtures/models/tiny-base", import.meta.url).pathname,
  sha256: "afc14d51ee4e31163d68f4c8bce017ce8bac673f1020a9fb2866d9639b0b1e99",
} as const;

/** Hex SHA-256 of a file. */
export async function sha256File(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const fixtureStage = defineStage({
  name: "base-fixture",
  version: 1,
  params: Schema.Struct({ sha256: Schema.String }),
  codec: modelCodec,
  estimate: () => 0,
  run: (p) =>
    Effect.tryPromise({
      try: async (): Promise<BaseModel> => {
        const file = `${TINY_BASE.dir}/model.safetensors`;
        const got = await sha256File(file);
        if (got !== p.sha256) {
          throw new Error(
            `${file}: SHA-256 ${got} is not the shipped base's ${p.sha256}; restore it with ` +
              "git checkout fixtures/models/tiny-base, rebuild it as its README says, or " +
              "use --set base=pretrain",
          );
        }
        return { path: TINY_BASE.dir };
      },
      catch: (e) =>
        new StageError({
          stage: "base-fixture",
          message: e instanceof Error ? e.message : String(e),
        }),
    }),
});

/** Where the "tiny" base comes from: the shipped fixture, or pretraining in the run. */
export type BaseSource = "fixture" | "pretrain";
export const BASE_SOURCES: readonly BaseSource[] = ["fixture", "pretrain"];

/**
 * The base-model node for a `model` config value: "tiny" → the shipped base (`base`
 * "fixture") or pretraining in the run (`base` "pretrain", sized by profile and steps); any
 * other value is a model path.
 */
export function baseNode(
  model: string,
  seed = 0,
  profile: PretrainProfile = "cpu",
  steps = PRETRAIN_DEFAULTS.steps,
  base: BaseSource = "pretrain",
): Node<BaseModel, Gpu> {
  if (model === "tiny" && base === "fixture") {
    return node(fixtureStage, { sha256: TINY_BASE.sha256 });
  }
  if (model === "tiny") return node(pretrainStage, { profile, steps, seed });
  return node(pathStage, {
    path: model,
    content: modelFingerprint(model, `${defaultCacheRoot()}/model-hashes.json`),
  });
}

/** The model itself (loading a path now). */
export function resolveBase(b: BaseModel): Model {
  return "model" in b ? b.model : loadModel(b.path);
}

/** The tokenizer that goes with a base. */
export function baseTokenizer(b: BaseModel, model: Model): TextTokenizer {
  if ("path" in b) return loadTokenizerFor(b.path, model);
  return new CompactTokenizer(tinyVocab());
}
