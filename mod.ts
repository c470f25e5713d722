/**
 * perk — PERK (Parameter-Efficient Reasoning over Knowledge) on WebGPU.
 * The public API: the GPU runtime and kernels, the differentiable core, data, models,
 * PERK itself, baselines and the experiment system.
 */
export * from "./kernels/runtime/tensor.ts";
export * from "./kernels/runtime/runtime.ts";
export * from "./kernels/runtime/kernel.ts";
export * from "./kernels/runtime/pool.ts";
export * from "./kernels/runtime/device.ts";
export * from "./kernels/runtime/gpu.ts";
export * from "./kernels/runtime/errors.ts";
export * from "./kernels/matmul/matmul.ts";
