/**
 * The configuration keys every experiment graph reads (what data, which cells, which
 * methods). Method hyperparameters are added beside these in experiments/defaults.ts, which
 * also holds every default value.
 */
import { Schema } from "effect";
import { BABI_TASKS } from "../data/babi_world.ts";
import { POSITIONS, WINDOWS } from "../data/lengths.ts";
import { METRICS } from "../data/scorers.ts";
import { RECORD_TASKS } from "../data/student_records.ts";
import { field } from "./config.ts";

const Length = Schema.Literals(WINDOWS);
const lengths = (doc: string) =>
  field(
    Schema.Array(Length).check(Schema.isMinLength(1)),
    `a non-empty list of ${WINDOWS.join(", ")}`,
    doc,
  );
const count = (min: number, doc: string) =>
  field(Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)), `an integer ≥ ${min}`, doc);

/** Builds the core fields; `methodNames` are the names a `methods` list may use. */
export function coreFields(methodNames: readonly string[]) {
  return {
    dataset: field(
      Schema.Literals(["babilong", "student-records"]),
      "babilong, student-records",
      "which benchmark the problems come from",
    ),
    tasks: field(
      Schema.Array(Schema.Literals([...BABI_TASKS, ...RECORD_TASKS])).check(Schema.isMinLength(1)),
      `a non-empty list of ${BABI_TASKS.join(", ")} (babilong) or ${
        RECORD_TASKS.join(", ")
      } (student-records)`,
      "tasks of the dataset; one cell per task",
    ),
    methods: field(
      Schema.Array(Schema.Literals(methodNames)).check(Schema.isMinLength(1)),
      `a non-empty list of ${methodNames.join(", ")}`,
      "methods compared; each is looked up in the method registry at run time",
    ),
    train_lengths: lengths("context lengths of the training problems (one cell per length)"),
    test_lengths: lengths("context lengths of the test problems (one cell per length)"),
    train_position: field(
      Schema.Literals(POSITIONS),
      POSITIONS.join(", "),
      "where the relevant facts sit in training contexts",
    ),
    test_position: field(
      Schema.Literals(POSITIONS),
      POSITIONS.join(", "),
      "where the relevant facts sit in test contexts",
    ),
    n_train: count(1, "training problems per (task, train length)"),
    n_validation: count(0, "validation problems per (task, train length)"),
    n_test: count(1, "test problems per (task, test length)"),
    seed: count(0, "seed of the problem generator (and of methods that draw randomness)"),
    segment_tokens: count(16, "tokens per context segment (PERK's chunking)"),
    tokenizer: field(
      Schema.String.check(Schema.isNonEmpty()),
      "gpt2, qwen3 or a model directory",
      "tokenizer the context lengths are counted in",
    ),
    metric: field(Schema.Literals(METRICS), METRICS.join(", "), "how predictions are scored"),
  };
}

/** The core part of a resolved config, as the graph builder reads it. */
export interface CoreConfig {
  readonly dataset: "babilong" | "student-records";
  readonly tasks: readonly string[];
  readonly methods: readonly string[];
  readonly train_lengths: readonly string[];
  readonly test_lengths: readonly string[];
  readonly train_position: string;
  readonly test_position: string;
  readonly n_train: number;
  readonly n_validation: number;
  readonly n_test: number;
  readonly seed: number;
  readonly segment_tokens: number;
  readonly tokenizer: string;
  readonly metric: string;
}
