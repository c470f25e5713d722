/** Elementwise (broadcasting), unary table, reductions and strided copies against references. */
import { assertClose, randn, testRuntime } from "./testing.ts";
import {
  add,
  div,
  mapN,
  mapRef,
  mapStats,
  mul,
  scale,
  sub,
  unary,
} from "../kernels/ops/elementwise.ts";
import { UNARY, type UnaryName } from "../kernels/ops/unary_table.ts";
import { reduce, type ReduceOp, reduceRef } from "../kernels/ops/reduce.ts";
import {
  concat,
  expand,
  permute,
  permuteRef,
  slice,
  sliceInto,
  transpose,
} from "../kernels/ops/strided.ts";

const rt = await testRuntime();
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

Deno.test("binary ops broadcast like NumPy on odd shapes", async () => {
  const cases: [number[], number[]][] = [
    [[3, 5, 7], [3, 5, 7]],
    [[3, 5, 7], [7]],
    [[3, 1, 7], [1, 5, 1]],
    [[13], [1]],
    [[2, 3, 1, 5], [4, 1]],
  ];
  const ops = [
    [add, (a: number, b: number) => a + b],
    [sub, (a: number, b: number) => a - b],
    [mul, (a: number, b: number) => a * b],
    [div, (a: number, b: number) => a / b],
  ] as const;
  let seed = 1;
  for (const [sa, sb] of cases) {
    const a = randn(numel(sa), seed++), b = randn(numel(sb), seed++, 0.5, 2);
    for (const [op, ref] of ops) {
      await rt.scopeAsync(async () => {
        const y = op(rt.tensor(a, sa), rt.tensor(b, sb));
        const want = mapRef(ref, [{ data: a, shape: sa }, { data: b, shape: sb }]);
        if (y.shape.join() !== want.shape.join()) throw new Error(`shape ${y.shape}`);
        assertClose(await rt.readF32(y), want.data, { label: `${op.name} [${sa}]∘[${sb}]` });
      });
    }
  }
});

Deno.test("three-input expression, scale, and accumulate into out", async () => {
  await rt.scopeAsync(async () => {
    const a = randn(35, 3), b = randn(7, 4), c = randn(1, 5);
    const y = mapN(
      "a * b + c * p.x",
      [rt.tensor(a, [5, 7]), rt.tensor(b, [7]), rt.tensor(c, [1])],
      {
        params: [0.5],
      },
    );
    const want = mapRef((x, y, z) => x * y + z * 0.5, [
      { data: a, shape: [5, 7] },
      { data: b, shape: [7] },
      { data: c, shape: [1] },
    ]);
    assertClose(await rt.readF32(y), want.data, { label: "a*b+c*p" });
    const s = scale(rt.tensor(a, [5, 7]), -2, { shift: 1 });
    assertClose(await rt.readF32(s), Array.from(a, (v) => -2 * v + 1), { label: "scale" });
    const acc = rt.tensor(a, [5, 7]);
    add(rt.tensor(a, [5, 7]), rt.tensor(b, [7]), { out: acc, accumulate: true });
    const w2 = mapRef((x, y) => 2 * x + y, [{ data: a, shape: [5, 7] }, { data: b, shape: [7] }]);
    assertClose(await rt.readF32(acc), w2.data, { label: "accumulate" });
  });
});

Deno.test("4-wide kernel (sizes % 4 = 0, no broadcast strides): expression, scalar input, accumulate", async () => {
  await rt.scopeAsync(async () => {
    const before = mapStats.wide;
    const a = randn(24, 6), b = randn(24, 7), c = randn(1, 8);
    const ta = rt.tensor(a, [4, 6]), tb = rt.tensor(b, [4, 6]), tc = rt.tensor(c, [1]);
    const y = mapN("a * b - exp(c) * p.y", [ta, tb, tc], { params: [0, 0.25] });
    assertClose(await rt.readF32(y), Array.from(a, (x, i) => x * b[i] - Math.exp(c[0]) * 0.25), {
      label: "a*b-exp(c)*p.y",
    });
    const acc = rt.tensor(b, [4, 6]);
    mul(ta, tb, { out: acc, accumulate: true });
    assertClose(await rt.readF32(acc), Array.from(a, (x, i) => x * b[i] + b[i]), {
      label: "accumulate",
    });
    const s = unary("silu", ta);
    assertClose(await rt.readF32(s), Array.from(a, (x) => x / (1 + Math.exp(-x))), {
      label: "silu",
    });
    if (mapStats.wide - before !== 3) {
      throw new Error(`${mapStats.wide - before} of 3 maps took the 4-wide kernel`);
    }
  });
});

Deno.test("every unary function of the table matches its float64 reference", async () => {
  const x = randn(257, 11, -4, 4);
  for (const name of Object.keys(UNARY) as UnaryName[]) {
    const q = name === "softplus" ? 3 : 1;
    const xs = name === "log" || name === "sqrt" || name === "rsqrt" || name === "recip"
      ? x.map((v) => Math.abs(v) + 0.1)
      : x;
    await rt.scopeAsync(async () => {
      const y = await rt.readF32(unary(name, rt.tensor(xs), q));
      assertClose(y, Array.from(xs, (v) => UNARY[name].ref(v, q)), {
        rtol: 2e-5,
        atol: 2e-6,
        label: name,
      });
    });
  }
});

Deno.test("unary derivative tables agree with finite differences", () => {
  // f' and f'' (float64) against central differences: guards the table the autodiff uses.
  for (const [name, d] of Object.entries(UNARY)) {
    for (const x0 of [-2.3, -0.7, 0.4, 1.9]) {
      const x = ["log", "sqrt", "rsqrt", "recip"].includes(name) ? Math.abs(x0) + 0.5 : x0;
      const q = name === "softplus" ? 3 : 1, h = 1e-5;
      const fd1 = (d.ref(x + h, q) - d.ref(x - h, q)) / (2 * h);
      const fd2 = (d.ref1(x + h, q) - d.ref1(x - h, q)) / (2 * h);
      assertClose([d.ref1(x, q)], [fd1], { rtol: 1e-5, atol: 1e-6, label: `${name}' at ${x}` });
      assertClose([d.ref2(x, q)], [fd2], { rtol: 1e-5, atol: 1e-6, label: `${name}'' at ${x}` });
    }
  }
});

Deno.test("sum/mean/max along every axis, including long axes split in two passes", async () => {
  const shapes = [[7], [3, 5, 7], [2, 9, 1, 6], [5000], [3, 4097]];
  let seed = 20;
  for (const shape of shapes) {
    const x = randn(numel(shape), seed++);
    for (let axis = 0; axis < shape.length; axis++) {
      for (const op of ["sum", "mean", "max"] as ReduceOp[]) {
        await rt.scopeAsync(async () => {
          const y = reduce(rt.tensor(x, shape), op, axis);
          assertClose(await rt.readF32(y), reduceRef(x, shape, op, axis), {
            rtol: 1e-4,
            atol: 1e-4,
            label: `${op} axis ${axis} of [${shape}]`,
          });
        });
      }
    }
  }
});

Deno.test("permute, transpose, slice, concat and expand match references", async () => {
  await rt.scopeAsync(async () => {
    const shape = [3, 4, 5, 2];
    const x = randn(numel(shape), 31);
    const xt = rt.tensor(x, shape);
    for (const perm of [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 0, 3, 1]]) {
      assertClose(await rt.readF32(permute(xt, perm)), permuteRef(x, shape, perm), {
        label: `permute ${perm}`,
      });
    }
    const m = randn(7 * 13, 32);
    const t = await rt.readF32(transpose(rt.tensor(m, [7, 13])));
    assertClose(t, permuteRef(m, [7, 13], [1, 0]), { label: "transpose" });
    // slice then concat round trip along a middle axis
    const a = slice(xt, 1, 0, 1), b = slice(xt, 1, 1, 3);
    if (b.shape.join() !== "3,3,5,2") throw new Error(`slice shape ${b.shape}`);
    assertClose(await rt.readF32(concat([a, b], 1)), x, { label: "slice+concat" });
    const e = await rt.readF32(expand(rt.tensor([1, 2, 3], [3, 1]), [2, 3, 4]));
    assertClose(e, Array.from({ length: 24 }, (_, i) => Math.floor(i / 4) % 3 + 1), {
      label: "expand",
    });
  });
});

Deno.test("strided copies whose last axis is contiguous and a multiple of 4 (the vec4 path) match references", async () => {
  await rt.scopeAsync(async () => {
    // (B, H, T, hd) → (B, T, H, hd), as attention's merged heads; hd = 8 moves as 2 vec4s.
    const shape = [2, 3, 5, 8];
    const x = randn(numel(shape), 41);
    const xt = rt.tensor(x, shape);
    for (const perm of [[0, 2, 1, 3], [2, 1, 0, 3], [1, 0, 2, 3]]) {
      assertClose(await rt.readF32(permute(xt, perm)), permuteRef(x, shape, perm), {
        label: `permute ${perm}`,
      });
    }
    // A slice at a vec4 offset of the last axis, another at an offset that is not (scalar path).
    const want = (lo: number, len: number) => x.filter((_, i) => i % 8 >= lo && i % 8 < lo + len);
    assertClose(await rt.readF32(slice(xt, 3, 4, 4)), want(4, 4), { label: "slice [4, 8)" });
    assertClose(await rt.readF32(slice(xt, 3, 2, 4)), want(2, 4), { label: "slice [2, 6)" });
    // sliceInto with accumulation at a vec4 offset, and concat along the last axis.
    const dst = rt.tensor(new Float32Array(numel(shape)).fill(1), shape);
    const part = slice(xt, 3, 0, 4);
    sliceInto(dst, part, 3, 4, true);
    const got = await rt.readF32(dst);
    assertClose(got, Array.from(x, (_, i) => (i % 8 >= 4 ? 1 + x[i - 4] : 1)), {
      label: "sliceInto add",
    });
    assertClose(await rt.readF32(concat([slice(xt, 3, 0, 4), slice(xt, 3, 4, 4)], 3)), x, {
      label: "concat last axis",
    });
  });
});

Deno.test("ops reject mismatched shapes with a readable error", () => {
  rt.scope(() => {
    let msg = "";
    try {
      add(rt.zeros([3, 4]), rt.zeros([5]));
    } catch (e) {
      msg = String(e);
    }
    if (!/do not broadcast/.test(msg)) throw new Error(`no broadcast error: ${msg}`);
  });
});
