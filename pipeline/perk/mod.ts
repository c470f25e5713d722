/** PERK: meta-training, test-time encoding, answering, reading your own document, export. */
export { type MetaState, metaTrain } from "./train.ts";
export { encodeContext, perkMetaGradient } from "./meta_step.ts";
export { answerProblem } from "./answer.ts";
export { documentSegments, Reader } from "./ask.ts";
export {
  loadMeta,
  metaFromExport,
  metaFromRun,
  type MetaTrainedPerk,
  writeExport,
} from "./meta_source.ts";
export { encodeProblem, renumberDocuments } from "./encode_problem.ts";
export { perkLM } from "./lm_adapter.ts";
