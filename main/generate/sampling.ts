// Next-token choice from one row of logits, with the processors in transformers' order: repetition penalty,
// then temperature, top-k, top-p, min-p. Greedy when temperature is 0 (or doSample is false).

export interface SamplingOptions {
  /** 0 = greedy. */
  readonly temperature?: number;
  readonly topK?: number;
  readonly topP?: number;
  readonly minP?: number;
  /** > 1 discourages tokens already in the context (CTRL's rule, as transformers applies it). */
  readonly repetitionPenalty?: number;
  readonly seed?: number;
}

export class SamplingError extends Error {
  override readonly name = 'SamplingError';
}

export const validateSampling = (o: SamplingOptions): void => {
  const bad = (k: string, v: unknown, rule: string) => {
    throw new SamplingError(`sampling option ${k}=${String(v)}: ${rule}`);
  };
  if (o.temperature !== undefined && !(o.temperature >= 0)) bad('temperature', o.temperature, 'must be ≥ 0');
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad('topK', o.topK, 'must be an integer ≥ 0');
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad('topP', o.topP, 'must be in (0, 1]');
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) bad('minP', o.minP, 'must be in [0, 1]');
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0)) bad('repetitionPenalty', o.repetitionPenalty, 'must be > 0');
};

export { createRng } from '../engine/random.ts';

export const applyRepetitionPenalty = (logits: Float32Array, context: Iterable<number>, penalty: number): void => {
  if (penalty === 1) return;
  for (const id of new Set(context)) {
    const v = logits[id];
    if (v !== undefined) logits[id] = v < 0 ? v * penalty : v / penalty;
  }
};

const argmax = (xs: Float32Array): number => {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
};

/** Chooses the next token. `logits` is one row (V,), modified in place; `context` holds the ids so far. */
export const sampleToken = (logits: Float32Array, context: readonly number[], o: SamplingOptions, rng: () => number): number => {
  applyRepetitionPenalty(logits, context, o.repetitionPenalty ?? 1);
  const temperature = o.temperature ?? 0;
  if (temperature === 0) return argmax(logits);
  // Candidates sorted by logit, cut by top-k first (as transformers does), then softmax over the rest.
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (o.topK && o.topK > 0) order = order.slice(0, o.topK);
  const max = logits[order[0]!]! / temperature;
  let probs = order.map((id) => Math.exp(logits[id]! / temperature - max));
  const norm = (ps: number[]) => {
    const total = ps.reduce((a, b) => a + b, 0);
    return ps.map((p) => p / total);
  };
  probs = norm(probs);
  if (o.topP !== undefined && o.topP < 1) {
    // Keep the smallest prefix whose mass reaches topP (at least one token).
    let mass = 0;
    let keep = 0;
    while (keep < probs.length && (keep === 0 || mass < o.topP)) mass += probs[keep++]!;
    order = order.slice(0, keep);
    probs = norm(probs.slice(0, keep));
  }
  if (o.minP !== undefined && o.minP > 0) {
    const floor = o.minP * probs[0]!;
    const keep = Math.max(1, probs.filter((p) => p >= floor).length);
    order = order.slice(0, keep);
    probs = norm(probs.slice(0, keep));
  }
  let u = rng();
  for (let i = 0; i < order.length; i++) {
    u -= probs[i]!;
    if (u <= 0) return order[i]!;
  }
  return order[order.length - 1]!;
};

/**
 * Watches generated text for stop strings. Text that might be the start of a stop string is held back,
 * so a streamed answer never shows a stop string or a piece of one.
 */
export class StopStringMatcher {
  private pending = '';

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds a text delta; returns the text safe to emit and whether a stop string was reached. */
  push(delta: string): { text: string; stopped: boolean } {
    this.pending += delta;
    for (const s of this.stops) {
      const at = s ? this.pending.indexOf(s) : -1;
      if (at >= 0) {
        const text = this.pending.slice(0, at);
        this.pending = '';
        return { text, stopped: true };
      }
    }
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text, stopped: false };
  }

  /** Text still held back when generation ends for another reason. */
  flush(): string {
    const text = this.pending;
    this.pending = '';
    return text;
  }
}
