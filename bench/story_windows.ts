/**
 * Tracking-story windows as token ids, for the PyTorch cross-check of story pretraining
 * (bench/torch_ft_icr.py --stories): the windows perk's pretraining draws with
 * `storyFraction: 1` (pipeline/base/tracking_stories.ts), each with the positions of its
 * answered rooms' first tokens. Training windows come from steps 0, 1, … of seed 0; the
 * evaluation windows are the held-out batch. `story_prose` > 0 gives sparse stories (prose
 * sentences between the facts, pretraining's `storyProse`).
 *
 * `deno run -A bench/story_windows.ts OUT.json [n_train=8000] [seq_len=256] [n_eval=64]
 *   [story_prose=0]`
 */
import { pretrainData } from "../pipeline/base/pretrain_data.ts";

const [out, nTrain = "8000", seqLen = "256", nEval = "64", storyProse = "0"] = Deno.args;
if (!out) {
  throw new Error(
    "usage: bench/story_windows.ts OUT.json [n_train] [seq_len] [n_eval] [story_prose]",
  );
}
const T = Number(seqLen);
const data = pretrainData({
  seqLen: T,
  taskFraction: 0.5,
  corpus: "sotu",
  heldOut: 0.05,
  storyFraction: 1,
  storyProse: Number(storyProse),
});
const rows = (step: number | "eval", n: number) => {
  const { ids, answers } = data.marked(0, step, n);
  return Array.from({ length: n }, (_, r) => ({
    ids: [...ids.subarray(r * T, (r + 1) * T)],
    answers: [...answers.subarray(r * T, (r + 1) * T).keys()].filter((t) => answers[r * T + t]),
  }));
};
const train = [];
for (let step = 0; train.length < Number(nTrain); step++) train.push(...rows(step, 64));
const doc = { seqLen: T, train: train.slice(0, Number(nTrain)), eval: rows("eval", Number(nEval)) };
Deno.writeTextFileSync(out, JSON.stringify(doc));
console.log(
  `${doc.train.length} training and ${doc.eval.length} evaluation windows of ${T} tokens`,
);
