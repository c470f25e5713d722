/** Shape arithmetic shared by the op kernels: broadcasting, strides, axes. */

export const MAX_RANK = 6;

/** NumPy broadcasting of two or more shapes; a clear error when they do not broadcast. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = new Array(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i];
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) {
        throw new RangeError(
          `shapes ${shapes.map((x) => `[${x}]`).join(" and ")} do not broadcast`,
        );
      }
    }
  }
  return out;
}

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** Strides of `shape` read as if broadcast to `out` (0 on broadcast dimensions). */
export function broadcastStrides(shape: readonly number[], out: readonly number[]): number[] {
  const own = stridesOf(shape);
  return out.map((_, o) => {
    const i = o - (out.length - shape.length);
    return i < 0 || shape[i] === 1 ? 0 : own[i];
  });
}

/** A possibly negative axis made non-negative, with a readable error when out of range. */
export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new RangeError(`axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Merge a shape into at most MAX_RANK dims for kernels, or fail with the shape named. */
export function checkRank(shape: readonly number[], what: string): void {
  if (shape.length > MAX_RANK) {
    throw new RangeError(`${what}: rank ${shape.length} [${shape}] exceeds ${MAX_RANK}`);
  }
}
