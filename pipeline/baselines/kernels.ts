/**
 * The sources the baseline stages' outputs depend on, hashed into their cache keys (editing
 * a kernel or this code invalidates cached trainings and predictions without a version bump).
 */
export const BASELINE_SOURCES: readonly string[] = [
  "kernels/autodiff/tape.ts",
  "kernels/autodiff/basic.ts",
  "kernels/autodiff/nn.ts",
  "kernels/autodiff/attention.ts",
  "kernels/ops/attention_kernels.ts",
  "kernels/autodiff/transforms.ts",
  "kernels/ops/elementwise.ts",
  "kernels/ops/nn_kernels.ts",
  "kernels/ops/reduce.ts",
  "kernels/ops/strided.ts",
  "kernels/matmul/matmul.ts",
  "kernels/matmul/matmul_subgroup.ts",
  "kernels/matmul/matmul_tiled.ts",
  "kernels/optim/adamw.ts",
  "pipeline/model/gpu_model.ts",
  "pipeline/model/gpu_ops.ts",
  "pipeline/model/gpu_generate.ts",
  "pipeline/model/lora.ts",
  "pipeline/model/rope.ts",
  "pipeline/baselines/in_context.ts",
  "pipeline/baselines/answer_loss.ts",
  "pipeline/baselines/answer.ts",
  "pipeline/baselines/positions.ts",
];

export const FT_ICR_SOURCES: readonly string[] = [
  ...BASELINE_SOURCES,
  "pipeline/baselines/ft_icr/train.ts",
  "pipeline/baselines/ft_icr/optimizer.ts",
  "pipeline/baselines/ft_icr/trainable.ts",
  "pipeline/perk/outer_optim.ts",
];
