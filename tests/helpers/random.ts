import { createRng } from '../../main/engine/random.ts';

/** The engine's seeded PRNG (mulberry32), so that test inputs are the same on every run. */
export const seededRandom = createRng;

export const uniform = (n: number, lo: number, hi: number, seed: number): Float64Array => {
  const rnd = seededRandom(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * rnd());
};
