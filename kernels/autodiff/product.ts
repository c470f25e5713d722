/**
 * The kernel choice for a plain product x·W (+ b) (or x·Wᵀ) of an activation by a weight,
 * shared by the frozen linear (model_ops.ts) and the fused LoRA linear (lora.ts).
 */
import type { Tensor } from "../runtime/tensor.ts";
import { matmul as mm } from "../matmul/matmul.ts";
import { permute } from "../ops/strided.ts";

/**
 * Rows at or below which a product takes another path: the subgroup matmul family tiles
 * rows, so a few rows (a decode step's B tokens) waste most of each tile — measured on
 * lavapipe at B = 4: x·W 10.5 ms vs 5.3 ms with the simple kernel; the tied head
 * h·Eᵀ (4 × 128 × 6144) 145 ms vs 15 ms as (E·hᵀ)ᵀ.
 */
export const FEW_ROWS = 16;

export function linearForward(
  x: Tensor,
  W: Tensor,
  b: Tensor | undefined,
  transB: boolean,
): Tensor {
  const rows = x.size / x.shape.at(-1)!;
  if (rows > FEW_ROWS || x.shape.length !== 2) return mm(x, W, { transB, bias: b });
  if (transB && !b) return permute(mm(W, x, { transB: true }), [1, 0]); // (N, rows)ᵀ
  return mm(x, W, { transB, bias: b, family: "naive" });
}
