/** Typed errors of the experiment system; each message names the key/file and the fix. */
import { Schema } from "effect";

/** A bad experiment parameter, config file or CLI argument. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  message: Schema.String,
}) {}

/** The cache folder could not be read or written (not a corrupt entry: that is recomputed). */
export class CacheError extends Schema.TaggedError<CacheError>()("CacheError", {
  message: Schema.String,
}) {}

/** A stage failed; `stage` names it, `message` carries the stage's own error text. */
export class StageError extends Schema.TaggedError<StageError>()("StageError", {
  stage: Schema.String,
  message: Schema.String,
}) {}

/** Writing the run folder (config, logs, results) failed. */
export class RunDirError extends Schema.TaggedError<RunDirError>()("RunDirError", {
  message: Schema.String,
}) {}

/** Text of any thrown value or typed error. */
export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    return String((e as { message: unknown }).message);
  }
  return String(e);
}
