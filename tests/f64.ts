/**
 * Float64 array helpers the tests share (the float64 references themselves live beside their
 * kernels in kernels/: see kernels/README.md).
 */
export type A = Float64Array;

export const f64 = (x: ArrayLike<number>): A => Float64Array.from(x);

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};
export const axpy = (x: A, a: number, v: ArrayLike<number>): A => x.map((xi, i) => xi + a * v[i]);
