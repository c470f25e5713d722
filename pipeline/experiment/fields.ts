/**
 * The configuration keys every experiment graph reads (what data, which cells, which
 * methods), declared once: `coreFields` validates them as config keys, and `CoreConfig`, the
 * Struct of the same fields, decodes a sweep point's config into typed values for the graph
 * builder. Method hyperparameters are added beside these in experiments/defaults.ts, which
 * also holds every default value.
 */
import { Effect, Schema, SchemaTransformation } from "effect";
import { BABI_TASKS } from "../data/babi_world.ts";
import { POSITIONS, WINDOWS } from "../data/lengths.ts";
import { METRICS } from "../data/scorers.ts";
import { RECORD_TASKS } from "../data/student_records.ts";
import { SIMULATOR } from "./babi_source.ts";
import { type Config, field, fieldsStruct } from "./config.ts";
import { ConfigError } from "./errors.ts";

/** Smallest plain token count a length may be: below it no bAbI story fits beside a haystack. */
export const MIN_LENGTH_TOKENS = 64;

/** The accepted forms of a length, in words (for messages). */
export const LENGTH_FORMS =
  `${WINDOWS.join(", ")} (×1024 tokens) or a token count ≥ ${MIN_LENGTH_TOKENS} ` +
  `written as digits (e.g. 256)`;

/** A window ("1k" … "128k") or a token count ≥ MIN_LENGTH_TOKENS written as digits. */
export const isLengthLabel = (s: string): boolean =>
  WINDOWS.some((w) => w === s) || (/^\d+$/.test(s) && Number(s) >= MIN_LENGTH_TOKENS);

/**
 * A context length: a window ("1k" … "128k") or a token count ("256"). YAML and the CLI read
 * `256` as a number, so integers are accepted and kept as their digits: lengths are strings
 * everywhere downstream (problem specs, cell labels, results columns).
 */
const Length = Schema.Union([Schema.String, Schema.Int]).pipe(
  Schema.decodeTo(
    Schema.String,
    SchemaTransformation.transform({ decode: (v) => String(v), encode: (s) => s }),
  ),
).check(Schema.makeFilter((s: string) => isLengthLabel(s) || `use ${LENGTH_FORMS}`));
const lengths = (doc: string) =>
  field(
    Schema.Array(Length).check(Schema.isMinLength(1)),
    `a non-empty list of ${LENGTH_FORMS}`,
    doc,
  );
const count = (min: number, doc: string) =>
  field(Schema.Int.check(Schema.isGreaterThanOrEqualTo(min)), `an integer ≥ ${min}`, doc);

/**
 * Builds the core fields; `methodNames` are the names a `methods` list may use (absent: any
 * name, for decoding a config whose names were checked when it was resolved).
 */
export function coreFields(methodNames?: readonly string[]) {
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
      Schema.Array(methodNames ? Schema.Literals(methodNames) : Schema.NonEmptyString).check(
        Schema.isMinLength(1),
      ),
      `a non-empty list of ${methodNames?.join(", ") ?? "method names"}`,
      "methods compared (registered in experiments/methods.ts)",
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
    babi_source: field(
      Schema.String.check(Schema.isNonEmpty()),
      `"${SIMULATOR}" or a folder of released bAbI files (qaN_…_train.txt and _test.txt)`,
      `where babilong's bAbI stories come from: "${SIMULATOR}" (generated here) or a folder of ` +
        "the released bAbI files, training and validation stories from each task's _train.txt " +
        "and test stories from its _test.txt (a relative folder resolves against the working " +
        "directory)",
    ),
    segment_tokens: count(16, "tokens per context segment (PERK's chunking)"),
    tokenizer: field(
      Schema.String.check(Schema.isNonEmpty()),
      "gpt2, qwen3 or a model directory",
      "tokenizer the context lengths are counted in",
    ),
    metric: field(Schema.Literals(METRICS), METRICS.join(", "), "how predictions are scored"),
  };
}

/** The core keys as one Struct: what the graph builder reads from a config, typed. */
export const CoreConfig = fieldsStruct(coreFields());
export type CoreConfig = typeof CoreConfig.Type;

/**
 * The core part of a (sweep point's) resolved config, decoded. Its values were validated key
 * by key when the config was resolved, so this fails only for fields that lack a core key.
 */
export const decodeCore = (config: Config): Effect.Effect<CoreConfig, ConfigError> =>
  Schema.decodeUnknownEffect(CoreConfig)(config).pipe(
    Effect.mapError((e) =>
      new ConfigError({ message: `experiment config: ${e.message.replaceAll("\n", " ")}` })
    ),
  );
