import { describe, expect, it } from 'vitest';
import { SamplingError, StopStringMatcher, applyRepetitionPenalty, createRng, sampleToken, validateSampling } from '../../main/generate/sampling.ts';

const logits = () => new Float32Array([1, 3, 2, 0.5, -1]);

describe('sampling', () => {
  it('greedy picks the argmax', () => {
    expect(sampleToken(logits(), [], { temperature: 0 }, createRng(1))).toBe(1);
  });

  it('repetition penalty follows transformers (divide positives, multiply negatives)', () => {
    const l = logits();
    applyRepetitionPenalty(l, [1, 4, 1], 2);
    expect(Array.from(l)).toEqual([1, 1.5, 2, 0.5, -2]);
    expect(sampleToken(logits(), [1], { temperature: 0, repetitionPenalty: 2 }, createRng(1))).toBe(2);
  });

  it('top-k 1 and a tiny top-p are greedy; min-p cuts the tail', () => {
    for (let seed = 0; seed < 20; seed++) {
      expect(sampleToken(logits(), [], { temperature: 1, topK: 1 }, createRng(seed))).toBe(1);
      expect(sampleToken(logits(), [], { temperature: 1, topP: 0.01 }, createRng(seed))).toBe(1);
      expect([1, 2]).toContain(sampleToken(logits(), [], { temperature: 1, minP: 0.3 }, createRng(seed)));
    }
  });

  it('samples in proportion to softmax(logits / T), reproducibly for a seed', () => {
    const counts = new Array(5).fill(0);
    const rng = createRng(42);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits(), [], { temperature: 1.5 }, rng)]++;
    const e = Array.from(logits(), (v) => Math.exp(v / 1.5));
    const z = e.reduce((a, b) => a + b, 0);
    e.forEach((p, i) => expect(counts[i] / n).toBeCloseTo(p / z, 1));
    const draw = (seed: number) => {
      const r = createRng(seed);
      return Array.from({ length: 10 }, () => sampleToken(logits(), [], { temperature: 1 }, r));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('rejects bad options by name', () => {
    expect(() => validateSampling({ topP: 0 })).toThrow(SamplingError);
    expect(() => validateSampling({ temperature: -1 })).toThrow(/temperature=-1/);
  });

  it('holds back partial stop strings and stops at a full one', () => {
    const m = new StopStringMatcher(['</answer>', '\n\nUser:']);
    expect(m.push('The answer is 4.')).toEqual({ text: 'The answer is 4.', stopped: false });
    expect(m.push(' </ans')).toEqual({ text: ' ', stopped: false });
    expect(m.push('wer> trailing')).toEqual({ text: '', stopped: true });
    const n = new StopStringMatcher(['STOP']);
    expect(n.push('ST')).toEqual({ text: '', stopped: false });
    expect(n.push('ILL going')).toEqual({ text: 'STILL going', stopped: false });
    expect(n.push('S')).toEqual({ text: '', stopped: false });
    expect(n.flush()).toBe('S');
  });
});
