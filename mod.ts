/**
 * perk — PERK (Parameter-Efficient Reasoning over Knowledge) on WebGPU.
 * The public API: the GPU runtime and matmul at the top level; the differentiable core
 * (`autodiff`, `nn`), `tokenizer`, `data`, `model`, `base` (the tiny base), `perk` (meta-training, encoding, reading a
 * document) and `experiment` (stages, graphs, sessions) as namespaces, since several layers
 * name their own `Tensor`.
 */
export * from "./kernels/runtime/tensor.ts";
export * from "./kernels/runtime/runtime.ts";
export * from "./kernels/runtime/kernel.ts";
export * from "./kernels/runtime/pool.ts";
export * from "./kernels/runtime/device.ts";
export * from "./kernels/runtime/gpu.ts";
export * from "./kernels/runtime/errors.ts";
export * from "./kernels/matmul/matmul.ts";
export * as autodiff from "./kernels/autodiff/transforms.ts";
export * as nn from "./kernels/autodiff/nn.ts";
export * as tokenizer from "./pipeline/tokenizer/mod.ts";
export * as data from "./pipeline/data/mod.ts";
export * as model from "./pipeline/model/mod.ts";
export * as base from "./pipeline/base/mod.ts";
export * as perk from "./pipeline/perk/mod.ts";
export * as experiment from "./pipeline/experiment/mod.ts";
