/**
 * Training state that lives on the GPU, for the loop (loop.ts): best-parameter copies kept
 * on the GPU (a copy per new best costs no readback, which matters for a full fine-tune; it
 * is read only for a checkpoint), and a ClippedAdamW's parameters and moments as checkpoint
 * tensors and back.
 */
import type { Runtime } from "../../kernels/runtime/runtime.ts";
import type { Tensor as GpuTensor } from "../../kernels/runtime/tensor.ts";
import type { ClippedAdamW } from "../../kernels/optim/clipped_adamw.ts";
import type { Tensor } from "../model/weights.ts";
import { tensorOf } from "./checkpoint.ts";
import type { Keeper, Resumed } from "./loop.ts";

/**
 * A keeper of copies of `current()`'s tensors, named `names` in checkpoints (`where` names
 * the checkpoint in errors).
 */
export function gpuKeeper(
  rt: Runtime,
  names: readonly string[],
  current: () => readonly GpuTensor[],
  where: string,
): Keeper<GpuTensor[]> {
  return {
    snapshot: () =>
      current().map((x) => {
        const y = rt.keep(rt.empty(x.shape));
        rt.copy(x, y);
        return y;
      }),
    drop: (b) => b.forEach((x) => x.dispose()),
    tensors: async (b) => {
      const data = await Promise.all(b.map((x) => rt.readF32(x)));
      return names.map((n, i): [string, Tensor] => [n, { shape: b[i].shape, data: data[i] }]);
    },
    restore: (t) =>
      current().map((x, i) => rt.keep(rt.tensor(tensorOf(t, names[i], x.size, where), x.shape))),
  };
}

/** The optimizer's state as named tensors: p.NAME, m.NAME, v.NAME. */
export async function adamwTensors(
  opt: ClippedAdamW,
  names: readonly string[],
): Promise<[string, Tensor][]> {
  const s = await opt.read();
  return (["p", "m", "v"] as const).flatMap((k) =>
    s[k].map((data, i): [string, Tensor] => [`${k}.${names[i]}`, { shape: opt.shapes[i], data }])
  );
}

/** Load what `adamwTensors` saved. */
export function loadAdamW(
  opt: ClippedAdamW,
  names: readonly string[],
  resumed: Resumed,
  where: string,
): void {
  const get = (k: string) =>
    names.map((n, i) =>
      tensorOf(resumed.tensors, `${k}.${n}`, opt.shapes[i].reduce((a, b) => a * b, 1), where)
    );
  opt.load({ p: get("p"), m: get("m"), v: get("v") });
}
