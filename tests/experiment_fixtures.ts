/** What the experiment tests share: the documented column order of predictions.jsonl. */

/** predictions.jsonl's fields in order; `sweep` only in swept runs. */
export function predictionColumns(swept: boolean): string[] {
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
  ];
}
