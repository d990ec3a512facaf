// The sampling settings every chat column shares, as the user types them (a number input gives null when emptied:
// the service's default then), with each field's problem.
import type { ApiInput } from '../../lib/api.ts';

export type Sampling = NonNullable<ApiInput<'chat.ask'>['sampling']>;

export class SamplingSettings {
  temperature = $state<number | null>(0);
  topK = $state<number | null>(null);
  topP = $state<number | null>(null);
  minP = $state<number | null>(null);
  repetitionPenalty = $state<number | null>(null);
  maxNewTokens = $state<number | null>(128);
  seed = $state<number | null>(0);
  system = $state('');

  /** Each field's problem, if any. */
  readonly errors = $derived.by(() => {
    const e: Partial<Record<keyof Sampling, string>> = {};
    const { temperature: t, topK, topP, minP, repetitionPenalty: rp, maxNewTokens: n, seed } = this;
    if (t !== null && !(t >= 0)) e.temperature = 'must be ≥ 0 (0 = greedy)';
    if (topK !== null && !(Number.isInteger(topK) && topK >= 1)) e.topK = 'must be a whole number ≥ 1 (empty = off)';
    if (topP !== null && !(topP > 0 && topP <= 1)) e.topP = 'must be in (0, 1] (empty = off)';
    if (minP !== null && !(minP >= 0 && minP <= 1)) e.minP = 'must be in [0, 1] (empty = off)';
    if (rp !== null && !(rp > 0)) e.repetitionPenalty = 'must be > 0 (1 = off)';
    if (n !== null && !(Number.isInteger(n) && n >= 1)) e.maxNewTokens = 'must be a whole number ≥ 1';
    if (seed !== null && !Number.isInteger(seed)) e.seed = 'must be a whole number';
    return e;
  });

  get valid(): boolean {
    return Object.keys(this.errors).length === 0;
  }

  /** The request's sampling: empty fields left out (the service's defaults). */
  toRequest(): Sampling {
    const s: Record<string, number> = {};
    for (const key of ['temperature', 'topK', 'topP', 'minP', 'repetitionPenalty', 'maxNewTokens', 'seed'] as const) {
      const value = this[key];
      if (value !== null && value !== undefined) s[key] = value;
    }
    return s as Sampling;
  }
}

