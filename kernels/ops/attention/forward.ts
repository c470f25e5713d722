/**
 * Forward kernel: O (B, H, T, D) and the per-row log-sum-exp L (B, H, T) for q (B, H, T, D),
 * k / v (B, Hkv, S, D). One lane per query row, online max / sum over the visible keys:
 * O_i = Σ_j P_ij v_j, L_i = log Σ_j exp(s_ij), s_ij = scale·q_i·k_j. A fully masked row
 * gives O = 0 and L = 0. Reference: attentionForward64 (reference.ts).
 */
import type { Tensor } from "../../runtime/tensor.ts";
import { type AttnKernelOptions, type AttnMask, Binder, dims } from "./launch.ts";
import type { AttnKernel } from "./specs.ts";
import { FWD_TILE } from "./flash.ts";
import { each } from "./subgroup.ts";
import { dotInto, forD } from "./wgsl.ts";

const FWD: AttnKernel = {
  name: "attn_fwd",
  side: "row",
  list: [["Q", "VT"], ["K", "VT"], ["Vv", "VT"], ["SEG", "i32"], ["O", "VT", true], [
    "L",
    "f32",
    true,
  ]],
  pre: `
  var q: array<VT, NV>;
  var acc: array<VT, NV>;
  ${forD("q[d] = Q[qr + d] * u.scale; acc[d] = VT(0.0);")}
  var m: f32 = -3.4028235e38;
  var l: f32 = 0.0;`,
  plain: `
    var s: f32 = 0.0;
    ${dotInto("s", "q[d]", "K[kr + d]")}
    let mn = select(m, max(m, s), vis);
    let cr = exp(m - mn);
    let p = select(0.0, exp(s - mn), vis);
    l = l * cr + p;
    ${forD("acc[d] = acc[d] * cr + p * Vv[kr + d];")}
    m = mn;`,
  // Per block: the running max takes all 8 visible scores at once, then one rescale.
  sg: {
    loads1: [{ v: "kc", arr: "K" }],
    dots: [{ out: "s", own: "q[c]", other: "kc" }],
    scal: (j) => `let sv${j} = select(-3.4028235e38, s${j}, vis${j});`,
    mid: `
    let mn = max(m, max(max(max(sv0, sv1), max(sv2, sv3)), max(max(sv4, sv5), max(sv6, sv7))));
    let cr = exp(m - mn);
    ${each((j) => `let p${j} = select(0.0, exp(s${j} - mn), vis${j});`)}
    l = l * cr + p0 + p1 + p2 + p3 + p4 + p5 + p6 + p7;
    m = mn;`,
    loads2: [{ v: "vc", arr: "Vv" }],
    accs: [{ acc: "acc", other: "vc", coef: "p" }],
    accScale: "cr",
  },
  // Per tile: one running max and one rescale for the whole tile (flash.ts).
  flash: { stage: [{ arr: "K" }, { arr: "Vv" }], tile: FWD_TILE },
  post: `  let inv = select(0.0, 1.0 / l, l > 0.0);
  if (!live) { return; }
  ${forD("O[qr + d] = acc[d] * inv;")}
  L[id] = select(0.0, m + log(l), l > 0.0);`,
};

/** O (B, H, T, D) and the per-row log-sum-exp L (B, H, T). */
export function attentionForward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  m: AttnMask,
  o: AttnKernelOptions = {},
): [Tensor, Tensor] {
  const d = dims(q, k, v, m), rt = q.rt;
  const out = rt.empty(q.shape), L = rt.empty([d.B, d.H, d.T]);
  const bd = new Binder(rt);
  bd.launch(FWD, d, m, [q, k, v, bd.seg(m), out, L], o);
  bd.release();
  return [out, L];
}
