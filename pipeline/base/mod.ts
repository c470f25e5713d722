/**
 * The tiny base: its vocabulary and config (tiny.ts), pretraining windows (task text, tracking
 * stories, prose), pretraining and curricula, and the experiment stage that provides a base
 * (the shipped fixture, a pretraining in the run, or a model path).
 */
export { buildCompactVocab, taskText, TINY_VOCAB, tinyConfig, writeTinyFiles } from "./tiny.ts";
export { PretrainData, pretrainData, tinyVocab } from "./pretrain_data.ts";
export {
  pretrain,
  PRETRAIN_DEFAULTS,
  pretrainInit,
  type PretrainOptions,
  type PretrainProfile,
  type PretrainProgress,
  type PretrainResult,
  pretrainSchedule,
  profileConfig,
} from "./pretrain.ts";
export { type BaseModel, baseNode, baseTokenizer, resolveBase, TINY_BASE } from "./base_stage.ts";
