/** Token statistics of a tokenized dataset: sizes, trained fraction, what truncation did. */

export interface TokenStats {
  readonly examples: number;
  /** Tokens over all examples. */
  readonly tokens: number;
  readonly mean: number;
  readonly median: number;
  /** 95th percentile of example length (nearest rank). */
  readonly p95: number;
  readonly min: number;
  readonly max: number;
  /** Tokens that carry loss (labels other than -100, past each example's first token). */
  readonly trainedTokens: number;
  /** trainedTokens / tokens. */
  readonly trainedFraction: number;
  /** Examples cut to the max length. */
  readonly truncated: number;
  /** Records that produced no example (too long under the policy, or unrenderable). */
  readonly dropped: number;
}

interface Tokenized {
  readonly inputIds: readonly number[];
  readonly labels: readonly number[];
}

/** The q-quantile of sorted values by nearest rank. */
const nearestRank = (sorted: readonly number[], q: number): number => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0;

export const computeTokenStats = (examples: readonly Tokenized[], counts: { dropped: number; truncated: number } = { dropped: 0, truncated: 0 }): TokenStats => {
  const lengths = examples.map((e) => e.inputIds.length).sort((a, b) => a - b);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  let trainedTokens = 0;
  for (const e of examples) for (let i = 1; i < e.labels.length; i++) if (e.labels[i] !== -100) trainedTokens++;
  const n = lengths.length;
  const median = n === 0 ? 0 : n % 2 ? lengths[(n - 1) / 2]! : (lengths[n / 2 - 1]! + lengths[n / 2]!) / 2;
  return {
    examples: n,
    tokens,
    mean: n ? tokens / n : 0,
    median,
    p95: nearestRank(lengths, 0.95),
    min: lengths[0] ?? 0,
    max: lengths[n - 1] ?? 0,
    trainedTokens,
    trainedFraction: tokens ? trainedTokens / tokens : 0,
    truncated: counts.truncated,
    dropped: counts.dropped,
  };
};
