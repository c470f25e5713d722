/**
 * FT-ICR examples as token ids, for the PyTorch cross-check of the learning dynamics
 * (bench/torch_ft_icr.py): the in-context prompt and the answer ids (EOS last) of each problem,
 * in the tiny base's compact vocabulary, and where the answer's label starts (the token after
 * "<output>") and, for QA1, where the person's name is — the two tokens that need the context or
 * the question; every other answer token is format.
 *
 * Problems as the learning test makes them (tests/baselines_learning_test.ts: seed 0, GPT-2
 * haystack sizing); `config` is the chosen profile's model config (pipeline/base/pretrain.ts).
 *
 * `deno run -A bench/ft_icr_examples.ts OUT.json [task=qa1] [length=1k] [n_train=2400] [n_test=128]
 *   [profile=cpu]`
 */
import { BABI_TASKS, type BabiTask } from "../pipeline/data/babi_world.ts";
import { generateProblems } from "../pipeline/data/problems.ts";
import { encodeIcr, icrAnswerText } from "../pipeline/baselines/in_context.ts";
import { CompactTokenizer } from "../pipeline/tokenizer/compact_vocab.ts";
import { tinyVocab } from "../pipeline/base/pretrain_data.ts";
import { type PretrainProfile, profileConfig } from "../pipeline/base/pretrain.ts";
import type { Model } from "../pipeline/model/weights.ts";

const [out, task = "qa1", length = "1k", nTrain = "2400", nTest = "128", profile = "cpu"] =
  Deno.args;
if (!out) {
  throw new Error(
    "usage: bench/ft_icr_examples.ts OUT.json [task] [length] [n_train] [n_test] [profile]",
  );
}
if (!BABI_TASKS.includes(task as BabiTask)) {
  throw new Error(`task "${task}" is not one of ${BABI_TASKS.join(", ")} (BabiLong only)`);
}
const tok = new CompactTokenizer(tinyVocab());
// encodeIcr reads only the config (BOS/EOS); no weights are needed.
const config = profileConfig(profile as PretrainProfile, tok.vocabSize);
const base: Model = { config, weights: new Map() };
const split = (name: "train" | "test", n: number) =>
  generateProblems({ dataset: "babilong", task: task as BabiTask, length, seed: 0, split: name, n })
    .map((p) => {
      const e = encodeIcr(base, tok, p, 0);
      const text = icrAnswerText(p);
      // "<output>" and the label are separate pre-tokens, so a prefix's ids are a prefix of the ids.
      const labelAt =
        tok.encode(text.slice(0, text.indexOf("<output>") + "<output>".length)).length;
      const who = /^Where is (\w+)\?$/.exec(p.question)?.[1];
      const nameAt = who ? tok.encode(text.slice(0, text.indexOf(` ${who} `))).length : -1;
      return { prompt: [...e.prompt], answer: [...e.answer], labelAt, nameAt, label: p.answer };
    });
const data = {
  task,
  length,
  profile,
  config,
  train: split("train", +nTrain),
  test: split("test", +nTest),
};
Deno.writeTextFileSync(out, JSON.stringify(data));
const ex = data.test[0];
console.log(
  `${out}: ${data.train.length} train, ${data.test.length} test; e.g. prompt ${ex.prompt.length} ids, ` +
    `answer ${JSON.stringify(tok.decode(ex.answer))}, label "${
      tok.decode([ex.answer[ex.labelAt]])
    }" ` +
    `at ${ex.labelAt}, name at ${ex.nameAt}`,
);
