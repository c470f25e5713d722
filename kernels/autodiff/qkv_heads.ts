/**
 * Attention inputs as one differentiable op (kernels in ../ops/qkv_heads.ts): q, k, v token
 * rows → head-major (B, heads, T, hd), q scaled by the attention scale, q and k rotated
 * (RoPE at per-token positions). It replaces a scale, two rotations and three permutes, and
 * its backward, tangent and the backward's tangent are one kernel each: the map is linear,
 * so the VJP is the inverse kernel (head-major → rows, rotation by −θ) and every JVP is the
 * kernel of its own rule on the tangents. The tables and positions are inputs, so the tape
 * holds them until the backward pass has used them (as model_ops.ts `ropeAt`).
 */
import type { Tensor } from "../runtime/tensor.ts";
import * as K from "../ops/qkv_heads.ts";
import { apply, type MaybeTensor, type Rule } from "./tape.ts";

interface HeadsP {
  readonly L: K.HeadsLayout;
  readonly rope: boolean;
}

/** [q, k, v, (cos, sin, pos)] → the tables (or none) and the three members. */
function parts<T extends MaybeTensor>(xs: readonly T[], p: HeadsP) {
  const rope = p.rope ? { cos: xs[3]!, sin: xs[4]!, pos: xs[5]! } : undefined;
  return { qkv: xs.slice(0, 3), rope };
}

function rule(inverse: boolean): Rule<HeadsP> {
  return {
    name: inverse ? "qkv_heads_t" : "qkv_heads",
    saveInputs: [3, 4, 5], // the tables and positions (the map is linear: q, k, v are not read)
    forward: (xs, p) => {
      const { qkv, rope } = parts(xs, p);
      return K.qkvHeads(qkv, p.L, rope, inverse).map((t) => {
        if (!t) throw new Error("qkvHeads: every member is present in a forward");
        return t;
      });
    },
    jvp: (xs, dxs, _, p) => K.qkvHeads(dxs.slice(0, 3), p.L, parts(xs, p).rope, inverse),
    vjp: (xs, ys, gs, p) => {
      if (!gs.some((g) => g)) return xs.map(() => undefined);
      // A member with no cotangent gets zeros (a clear, no dispatch): one kernel does all three.
      const g = gs.map((t, i) => t ?? xs[0].rt.zeros(ys[i].shape));
      const tables = p.rope ? xs.slice(3) : [];
      return [
        ...apply(inverse ? forwardRule : inverseRule, [...g, ...tables], p),
        ...tables.map(
          () => undefined,
        ),
      ];
    },
  };
}
const forwardRule = rule(false);
const inverseRule = rule(true);

/**
 * q (B·T, H·hd), k and v (B·T, Hkv·hd) → [qh (B, H, T, hd), kh, vh (B, Hkv, T, hd)]: q scaled
 * by `L.qScale`; with `rope`, q and k rotated at positions `rope.pos` (B·T, i32) by tables
 * cos/sin (P, hd/2) covering every position used.
 */
export function qkvHeads(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  L: K.HeadsLayout,
  rope?: K.HeadsRope,
): [Tensor, Tensor, Tensor] {
  const xs = rope ? [q, k, v, rope.cos, rope.sin, rope.pos] : [q, k, v];
  const [qh, kh, vh] = apply(forwardRule, xs, { L, rope: !!rope });
  return [qh, kh, vh];
}
