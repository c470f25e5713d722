/**
 * Unary elementwise functions as data (tinygrad style): for each, the WGSL expression of
 * f(x), f'(x) and f''(x) in terms of `x` (and the op parameter `q`, e.g. softplus β), and a
 * float64 TypeScript twin of each for references and finite-difference tests. The autodiff
 * core derives VJP (g·f'), JVP (ẋ·f') and the tangent of the VJP (ġ·f' + g·f''·ẋ) from it.
 */

/** WGSL helpers every elementwise kernel includes (numerically safe forms). */
export const WGSL_MATH = /* wgsl */ `
fn sigmoid_(x: f32) -> f32 { let e = exp(-abs(x)); let s = 1.0 / (1.0 + e); return select(1.0 - s, s, x >= 0.0); }
fn tanh_(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn softplus_(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
// erf: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd extension.
fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
  return sign(x) * y;
}
const SQRT1_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const GELU_C: f32 = 0.7978845608028654; // sqrt(2/pi)
`;

export interface UnaryDef {
  /** WGSL expressions in `x` and `q` (the op's parameter). */
  readonly f: string;
  readonly d1: string;
  readonly d2: string;
  /** float64 references. */
  readonly ref: (x: number, q: number) => number;
  readonly ref1: (x: number, q: number) => number;
  readonly ref2: (x: number, q: number) => number;
}

const sig = (x: number) => 1 / (1 + Math.exp(-x));
const erf = (x: number) => {
  // High-accuracy series/continued fraction is overkill here: use the complementary form.
  const t = 1 / (1 + 0.5 * Math.abs(x));
  const y = 1 - t * Math.exp(
        -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                                      t * (-0.82215223 + t * 0.17087277)))))))),
      );
  return x >= 0 ? y : -y;
};
const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const GC = Math.sqrt(2 / Math.PI);

export const UNARY: Record<string, UnaryDef> = {
  neg: { f: "-x", d1: "-1.0", d2: "0.0", ref: (x) => -x, ref1: () => -1, ref2: () => 0 },
  exp: {
    f: "exp(x)",
    d1: "exp(x)",
    d2: "exp(x)",
    ref: Math.exp,
    ref1: Math.exp,
    ref2: Math.exp,
  },
  log: {
    f: "log(x)",
    d1: "1.0 / x",
    d2: "-1.0 / (x * x)",
    ref: Math.log,
    ref1: (x) => 1 / x,
    ref2: (x) => -1 / (x * x),
  },
  square: {
    f: "x * x",
    d1: "2.0 * x",
    d2: "2.0",
    ref: (x) => x * x,
    ref1: (x) => 2 * x,
    ref2: () => 2,
  },
  sqrt: {
    f: "sqrt(x)",
    d1: "0.5 / sqrt(x)",
    d2: "-0.25 / (x * sqrt(x))",
    ref: Math.sqrt,
    ref1: (x) => 0.5 / Math.sqrt(x),
    ref2: (x) => -0.25 / (x * Math.sqrt(x)),
  },
  rsqrt: {
    f: "inverseSqrt(x)",
    d1: "-0.5 * inverseSqrt(x) / x",
    d2: "0.75 * inverseSqrt(x) / (x * x)",
    ref: (x) => 1 / Math.sqrt(x),
    ref1: (x) => -0.5 / (x * Math.sqrt(x)),
    ref2: (x) => 0.75 / (x * x * Math.sqrt(x)),
  },
  recip: {
    f: "1.0 / x",
    d1: "-1.0 / (x * x)",
    d2: "2.0 / (x * x * x)",
    ref: (x) => 1 / x,
    ref1: (x) => -1 / (x * x),
    ref2: (x) => 2 / (x * x * x),
  },
  tanh: {
    f: "tanh_(x)",
    d1: "(1.0 - tanh_(x) * tanh_(x))",
    d2: "(-2.0 * tanh_(x) * (1.0 - tanh_(x) * tanh_(x)))",
    ref: Math.tanh,
    ref1: (x) => 1 - Math.tanh(x) ** 2,
    ref2: (x) => -2 * Math.tanh(x) * (1 - Math.tanh(x) ** 2),
  },
  sigmoid: {
    f: "sigmoid_(x)",
    d1: "(sigmoid_(x) * (1.0 - sigmoid_(x)))",
    d2: "(sigmoid_(x) * (1.0 - sigmoid_(x)) * (1.0 - 2.0 * sigmoid_(x)))",
    ref: sig,
    ref1: (x) => sig(x) * (1 - sig(x)),
    ref2: (x) => sig(x) * (1 - sig(x)) * (1 - 2 * sig(x)),
  },
  /** softplus with sharpness β = q: log(1 + exp(βx)) / β. */
  softplus: {
    f: "(softplus_(q * x) / q)",
    d1: "sigmoid_(q * x)",
    d2: "(q * sigmoid_(q * x) * (1.0 - sigmoid_(q * x)))",
    ref: (x, q) => Math.log1p(Math.exp(-Math.abs(q * x))) / q + Math.max(x, 0) * Math.sign(q),
    ref1: (x, q) => sig(q * x),
    ref2: (x, q) => q * sig(q * x) * (1 - sig(q * x)),
  },
  silu: {
    f: "(x * sigmoid_(x))",
    d1: "(sigmoid_(x) * (1.0 + x * (1.0 - sigmoid_(x))))",
    d2: "(sigmoid_(x) * (1.0 - sigmoid_(x)) * (2.0 + x * (1.0 - 2.0 * sigmoid_(x))))",
    ref: (x) => x * sig(x),
    ref1: (x) => sig(x) * (1 + x * (1 - sig(x))),
    ref2: (x) => sig(x) * (1 - sig(x)) * (2 + x * (1 - 2 * sig(x))),
  },
  /** GELU, exact (erf) form: x·Φ(x). */
  gelu: {
    f: "(0.5 * x * (1.0 + erf_(x * SQRT1_2)))",
    d1: "(0.5 * (1.0 + erf_(x * SQRT1_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x))",
    d2: "((2.0 - x * x) * INV_SQRT_2PI * exp(-0.5 * x * x))",
    ref: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
    ref1: (x) => 0.5 * (1 + erf(x / Math.SQRT2)) + x * pdf(x),
    ref2: (x) => (2 - x * x) * pdf(x),
  },
  /** GELU, tanh approximation (GPT-2's "gelu_new"). */
  gelu_tanh: {
    f: "(0.5 * x * (1.0 + tanh_(GELU_C * (x + 0.044715 * x * x * x))))",
    d1: "gelu_tanh_d1(x)",
    d2: "gelu_tanh_d2(x)",
    ref: (x) => 0.5 * x * (1 + Math.tanh(GC * (x + 0.044715 * x ** 3))),
    ref1: (x) => {
      const u = GC * (x + 0.044715 * x ** 3), t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GC * (1 + 3 * 0.044715 * x * x);
    },
    ref2: (x) => {
      const u = GC * (x + 0.044715 * x ** 3), t = Math.tanh(u), s = 1 - t * t;
      const du = GC * (1 + 3 * 0.044715 * x * x), ddu = GC * 6 * 0.044715 * x;
      return s * du + 0.5 * x * (-2 * t * s * du * du + s * ddu);
    },
  },
};

/** Extra WGSL helpers for the longer derivative forms. */
export const WGSL_DERIVS = /* wgsl */ `
fn gelu_tanh_d1(x: f32) -> f32 {
  let t = tanh_(GELU_C * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 0.134145 * x * x);
}
fn gelu_tanh_d2(x: f32) -> f32 {
  let t = tanh_(GELU_C * (x + 0.044715 * x * x * x));
  let s = 1.0 - t * t;
  let du = GELU_C * (1.0 + 0.134145 * x * x);
  let ddu = GELU_C * 0.26829 * x;
  return s * du + 0.5 * x * (-2.0 * t * s * du * du + s * ddu);
}
`;

export type UnaryName = keyof typeof UNARY;
