/**
 * The model layer: configs, weights, loaders, float64 reference decoder, LoRA/PEFT; the GPU
 * model and batched generation (its ops: kernels/autodiff/model_ops.ts). The tiny base and its
 * pretraining are pipeline/base/.
 */
export * from "./config.ts";
export * from "./weights.ts";
export { ModelError } from "./errors.ts";
export * from "./safetensors.ts";
export { canonicalToHf, hfEntries, hfLinearPath, hfToCanonical } from "./hf_names.ts";
export { loadHfModel, readJsonFile, saveHfModel } from "./hf_loader.ts";
export { llama2cConfig, parseLlama2c, parseLlama2cHeader, readLlama2c } from "./llama2c.ts";
export {
  Llama2cTokenizer,
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
} from "./llama2c_tokenizer.ts";
export { applyRope, ropeAttentionScale, ropeInvFreq, ropeTables } from "./rope.ts";
export * from "./reference.ts";
export * from "./lora.ts";
export { exportPeft, importPeft, peftConfig } from "./peft.ts";
export { isLlama2cPath, loadModel, loadTokenizerFor, promptIds } from "./load.ts";
export {
  type GpuForwardOptions,
  type GpuForwardResult,
  GpuKvCache,
  type GpuLora,
  gpuLora,
  type GpuLossOptions,
  GpuModel,
  uploadLora,
} from "./gpu_model.ts";
export { generateGreedyGpu, type GpuGenerateOptions } from "./gpu_generate.ts";
