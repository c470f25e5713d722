/**
 * `deno run -A pipeline/base/pretrain_cli.ts OUT_DIR ['{"profile":"cpu",…}' | '[{…}, {…}]']`: pretrain
 * and write a model directory (config.json, model.safetensors F32, compact_vocab.json) plus
 * pretrain_log.json (options, loss curve, held-out losses, tokens/s). A JSON array runs a
 * curriculum (pretrain_curriculum.ts): each stage starts from the one before.
 */
import { createRuntime } from "../../kernels/runtime/device.ts";
import { writeFileAtomic } from "../model/atomic.ts";
import { saveHfModel } from "../model/hf_loader.ts";
import {
  pretrain,
  PRETRAIN_DEFAULTS,
  type PretrainOptions,
  type PretrainProgress,
  type PretrainResult,
} from "./pretrain.ts";
import { pretrainCurriculum } from "./pretrain_curriculum.ts";

async function cli(args: string[]): Promise<number> {
  const [out, json] = args;
  if (!out) {
    console.error(
      "usage: pretrain.ts OUT_DIR [OPTIONS_JSON | [STAGE_OPTIONS_JSON, …]]   (options: " +
        "PretrainOptions fields)",
    );
    return 2;
  }
  const parsed = json
    ? JSON.parse(json) as Partial<PretrainOptions> | Partial<PretrainOptions>[]
    : {};
  const stages = Array.isArray(parsed) ? parsed : [parsed];
  const rt = await createRuntime();
  try {
    const show = (prefix: string) => (p: PretrainProgress) => {
      if (p.step % 10 === 0 || p.step === p.steps || p.step === 1) {
        console.log(
          `${prefix}step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} |g| ${
            p.gradNorm.toFixed(3)
          } ` +
            `lr ${p.lr.toExponential(2)} ${p.tokensPerSecond.toFixed(0)} tok/s ${
              p.seconds.toFixed(0)
            } s`,
        );
      }
    };
    const results = Array.isArray(parsed)
      ? await pretrainCurriculum(
        rt,
        stages,
        (i, p) => show(`stage ${i + 1}/${stages.length} `)(p),
      )
      : [await pretrain(rt, stages[0], show(""))];
    const r = results.at(-1)!;
    saveHfModel(out, { config: r.config, weights: r.weights });
    Deno.copyFileSync(
      new URL("../../fixtures/models/tiny/compact_vocab.json", import.meta.url),
      `${out}/compact_vocab.json`,
    );
    const logOf = (o: Partial<PretrainOptions>, r: PretrainResult) => ({
      options: { ...PRETRAIN_DEFAULTS, ...o },
      losses: r.losses,
      evalLossStart: r.evalLossStart,
      evalLossEnd: r.evalLossEnd,
      tokens: r.tokens,
      seconds: r.seconds,
      tokensPerSecond: r.tokensPerSecond,
      storyAccuracy: r.storyAccuracy,
    });
    const log = Array.isArray(parsed)
      ? { stages: results.map((r, i) => logOf(stages[i], r)), adapter: rt.adapter.description }
      : { ...logOf(stages[0], r), adapter: rt.adapter.description };
    writeFileAtomic(`${out}/pretrain_log.json`, JSON.stringify(log, null, 1) + "\n");
    results.forEach((r, i) =>
      console.log(
        `${results.length > 1 ? `stage ${i + 1}: ` : ""}held-out loss ${
          r.evalLossStart.toFixed(4)
        } → ${r.evalLossEnd.toFixed(4)}; ${r.tokens} tokens in ${r.seconds.toFixed(0)} s` +
          (r.storyAccuracy === undefined
            ? ""
            : `; held-out story answers ${(100 * r.storyAccuracy).toFixed(1)}% right`),
      )
    );
    console.log(`wrote ${out}`);
    return 0;
  } finally {
    rt.destroy();
  }
}

if (import.meta.main) Deno.exit(await cli(Deno.args));
