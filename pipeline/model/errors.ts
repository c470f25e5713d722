/**
 * The model layer's one error type: every bad input (config, checkpoint, tokenizer, adapter,
 * CLI flag) becomes a ModelError whose message names the file or field and the fix.
 */
export class ModelError extends Error {
  override readonly name = "ModelError";
}
