/** A seeded train/eval split by example: the same seed and data give the same split, each part in file order. */
import { createRng } from '../../engine/random.ts';

export interface SplitOptions {
  /** Share of the examples held out, in [0, 1). Ignored when evalCount is given. */
  readonly evalFraction?: number;
  /** Exact number held out. */
  readonly evalCount?: number;
  readonly seed?: number;
}

export interface Split<T> {
  readonly train: T[];
  readonly eval: T[];
}

/** A permutation of 0..n-1, Fisher–Yates with the engine's seeded generator. */
export const seededPermutation = (n: number, seed: number): number[] => {
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = createRng(seed >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
};

export const splitTrainEval = <T>(items: readonly T[], options: SplitOptions): Split<T> => {
  const n = items.length;
  const fraction = options.evalFraction ?? 0;
  if (options.evalCount === undefined && !(fraction >= 0 && fraction < 1)) throw new RangeError(`evalFraction must be in [0, 1), got ${fraction}`);
  let count = options.evalCount ?? Math.round(fraction * n);
  // A positive fraction holds out at least one example and leaves at least one to train on.
  if (options.evalCount === undefined && fraction > 0 && n >= 2) count = Math.min(Math.max(count, 1), n - 1);
  if (!Number.isInteger(count) || count < 0 || count > n) throw new RangeError(`cannot hold out ${count} of ${n} examples`);
  const held = new Set(seededPermutation(n, options.seed ?? 0).slice(0, count));
  const train: T[] = [];
  const evalPart: T[] = [];
  items.forEach((item, i) => (held.has(i) ? evalPart : train).push(item));
  return { train, eval: evalPart };
};
