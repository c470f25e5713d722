/**
 * Every shipped experiment that answers with the whole context in the prompt (FT-ICR, prompt-only)
 * must fit its longest cpu-profile prompt into the tiny base's positions, with the RoPE scaling it
 * declares — otherwise `ft-icr-eval` fails after hours of upstream work. The babilong-qa*-8k and
 * length-generalisation experiments once shipped without `rope_scaling` and did exactly that.
 */
import assert from "node:assert/strict";
import { Effect, Exit } from "effect";
import { resolveConfig } from "../pipeline/experiment/config.ts";
import { DEFAULTS, FIELDS } from "../experiments/defaults.ts";
import { EXPERIMENTS } from "../experiments/registry.ts";
import { generateProblems, type ProblemSpec } from "../pipeline/data/problems.ts";
import { icrPromptText } from "../pipeline/baselines/in_context.ts";
import { extendPositions, parseRopeChoice } from "../pipeline/baselines/positions.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { profileConfig } from "../pipeline/base/pretrain.ts";

const IN_CONTEXT: Record<string, number> = { "ft-icr": 0, "prompt-only": 4 }; // method → shots
const tok = new CompactTokenizer(tinyVocab());
const tokens = (length: string) =>
  length.endsWith("k") ? Number(length.slice(0, -1)) * 1024 : Number(length);

Deno.test("experiments: in-context baselines' cpu-profile prompts fit the base's positions (RoPE scaling as declared)", () => {
  let checked = 0;
  for (const exp of EXPERIMENTS.values()) {
    const exit = Effect.runSyncExit(
      resolveConfig(FIELDS, { defaults: DEFAULTS, overrides: exp.overrides, sweep: exp.sweep }, {
        profile: "cpu",
      }),
    );
    assert.ok(Exit.isSuccess(exit), `${exp.name}: config does not resolve`);
    const c = exit.value.config as Record<string, unknown>;
    const methods = (c.methods as string[]).filter((m) => m in IN_CONTEXT);
    if (!methods.length || c.model !== "tiny") continue;
    const config = profileConfig(c.base_profile as "cpu", tinyVocab().size);
    const longest = [...(c.test_lengths as string[])].sort((a, b) => tokens(b) - tokens(a))[0];
    for (const task of c.tasks as string[]) {
      const spec = {
        dataset: c.dataset,
        task,
        length: longest,
        split: "test",
        n: 3,
        seed: c.seed,
        position: c.test_position,
        segmentTokens: c.segment_tokens,
        tokenizer: c.tokenizer,
      } as ProblemSpec;
      for (const m of methods) {
        const prompts = generateProblems(spec).map((p) =>
          tok.encode(icrPromptText(p, IN_CONTEXT[m]))
        );
        const needed = Math.max(...prompts.map((x) => x.length)) + (c.max_new_tokens as number);
        const where = `${exp.name} ${m} ${task} ${longest}`;
        assert.doesNotThrow(
          () =>
            extendPositions(
              { config, weights: new Map() },
              needed,
              parseRopeChoice(c.rope_scaling as string),
              where,
            ),
          `${where}: ${needed} tokens`,
        );
        checked++;
      }
    }
  }
  assert.ok(checked >= 10, `only ${checked} experiment/method/task cells checked`);
});

Deno.test("experiments: without RoPE scaling an 8K in-context prompt is a clear error naming the fix", () => {
  const config = profileConfig("cpu", tinyVocab().size);
  assert.throws(
    () =>
      extendPositions({ config, weights: new Map() }, 9900, parseRopeChoice("none"), "ft-icr-eval"),
    /ft-icr-eval: sequences of 9900 tokens are longer than the model's 4096 positions; set rope_scaling to "linear:F" or "yarn:F" with F ≥ 2.42/,
  );
});
