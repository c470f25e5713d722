/** Long-context reasoning data: bAbI facts, haystacks, Student Records, prompts, scorers. */
export * from "./babi_world.ts";
export * from "./babi_reader.ts";
export * from "./corpus.ts";
export * from "./sentences.ts";
export * from "./lengths.ts";
export * from "./haystack.ts";
export * from "./chunker.ts";
export * from "./student_records.ts";
export * from "./prompts.ts";
export * from "./problems.ts";
export * from "./jsonl.ts";
export * from "./scorers.ts";
export * from "./stages.ts";
export { DataError, DataInputError } from "./errors.ts";
export { deriveSeed, type Rng, seededRng } from "./rng.ts";
