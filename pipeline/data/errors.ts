/** Typed errors of the data stages (Effect edges); the message names the file/field and fix. */
import { Schema } from "effect";

export class DataError extends Schema.TaggedError<DataError>()("DataError", {
  message: Schema.String,
}) {}

/** Thrown by the plain functions; the Effect stages turn it into a DataError. */
export class DataInputError extends Error {
  override name = "DataInputError";
}
