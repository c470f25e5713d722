/** What the experiment tests share: the documented column order of predictions.jsonl. */

/** predictions.jsonl's fields in order; `sweep` only in swept runs, `answer_kind` on bAbI. */
export function predictionColumns(swept: boolean, babi = false): string[] {
  return [
    "method",
    "task",
    "train_length",
    "test_length",
    ...(swept ? ["sweep"] : []),
    "id",
    "question",
    "target",
    "prediction",
    "correct",
    "ms",
    ...(babi ? ["answer_kind"] : []),
  ];
}
