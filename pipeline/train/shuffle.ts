/** Deterministic permutations, so that a resumed run draws what an uninterrupted one did. */

/** A permutation of 0 … n−1 that depends only on (seed, k) (e.g. k = the epoch). */
export function shuffled(n: number, seed: number, k: number): number[] {
  let a = (seed * 2654435761 + k * 40503 + 1) >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
