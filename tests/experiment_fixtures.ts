/** What the experiment tests share: the documented column order of predictions.jsonl, records. */
import type { PredictionRecord } from "../pipeline/experiment/predictions.ts";

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

/** A scored QA1 prediction ("Where is Mary?" → kitchen, right); `over` changes some fields. */
export function qa1Record(over: Partial<PredictionRecord>): PredictionRecord {
  return {
    method: "perk",
    task: "qa1",
    train_length: "256",
    test_length: "256",
    id: "p0",
    question: "Where is Mary?",
    target: "kitchen",
    prediction: "kitchen",
    correct: 1,
    ms: 1,
    ...over,
  };
}
