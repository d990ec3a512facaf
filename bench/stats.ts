// What the benchmarks share: the median of timings, and synthetic token ids from a fixed LCG (the same stream every
// run, so ours and the reference see the same rows).

/** The middle value (upper middle for an even count); NaN for none. */
export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** A stream of token ids below `vocab` from the LCG s ← (1103515245·s + 12345) mod 2³¹, starting at `seed`. */
export const lcgTokens = (vocab: number, seed = 2024): (() => number) => {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % vocab;
  };
};
