import { describe, expect, it } from 'vitest';
import { lrAt, lrMultiplier, OptimizerError, type ScheduleConfig } from '../../../main/engine/optim/index.ts';

const BASE = { baseLr: 2e-4, warmupSteps: 10, totalSteps: 110 } as const;
const schedule = (kind: ScheduleConfig['kind'], extra: Partial<ScheduleConfig> = {}): ScheduleConfig => ({
  kind,
  ...BASE,
  ...extra,
});

/** transformers' lambdas, transcribed from optimization.py. */
const hfWarmup = (step: number, warmup: number): number => step / Math.max(1, warmup);
const hfLinear = (step: number, warmup: number, total: number): number =>
  step < warmup ? hfWarmup(step, warmup) : Math.max(0, (total - step) / Math.max(1, total - warmup));
const hfCosine = (step: number, warmup: number, total: number, numCycles = 0.5): number => {
  if (step < warmup) return hfWarmup(step, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
};

describe('lrAt', () => {
  it('warms up linearly from 0 for every kind', () => {
    for (const kind of ['constant', 'linear', 'cosine'] as const) {
      expect(lrAt(schedule(kind), 0)).toBe(0);
      expect(lrAt(schedule(kind), 5)).toBe(1e-4);
      expect(lrAt(schedule(kind), 10)).toBe(2e-4);
    }
  });

  it('constant stays at baseLr after warmup', () => {
    expect(lrAt(schedule('constant'), 60)).toBe(2e-4);
    expect(lrAt(schedule('constant'), 110)).toBe(2e-4);
    expect(lrAt(schedule('constant', { warmupSteps: 0 }), 0)).toBe(2e-4);
  });

  it('linear decays to 0 at totalSteps', () => {
    expect(lrAt(schedule('linear'), 60)).toBe(1e-4);
    expect(lrAt(schedule('linear'), 85)).toBe(2e-4 * 0.25);
    expect(lrAt(schedule('linear'), 110)).toBe(0);
    expect(lrAt(schedule('linear'), 200)).toBe(0);
  });

  it('cosine follows half a cosine to 0 at totalSteps', () => {
    expect(lrAt(schedule('cosine'), 60)).toBeCloseTo(1e-4, 18);
    expect(lrAt(schedule('cosine'), 35)).toBeCloseTo(2e-4 * 0.5 * (1 + Math.SQRT1_2), 18);
    expect(lrAt(schedule('cosine'), 110)).toBe(0);
  });

  it('matches the transformers lambdas exactly at every step', () => {
    for (const [warmup, total] of [[10, 110], [0, 7], [3, 3], [1, 50]] as const) {
      for (let step = 0; step <= total + 2; step++) {
        const config = { baseLr: 1, warmupSteps: warmup, totalSteps: total };
        expect(lrMultiplier({ kind: 'linear', ...config }, step)).toBe(hfLinear(step, warmup, total));
        expect(lrMultiplier({ kind: 'cosine', ...config }, step)).toBe(hfCosine(step, warmup, total));
        expect(lrMultiplier({ kind: 'constant', ...config }, step)).toBe(step < warmup ? hfWarmup(step, warmup) : 1);
      }
    }
  });

  it('lifts the decay to minLrRatio', () => {
    expect(lrAt(schedule('cosine', { minLrRatio: 0.1 }), 110)).toBeCloseTo(2e-5, 18);
    expect(lrAt(schedule('cosine', { minLrRatio: 0.1 }), 60)).toBeCloseTo(2e-4 * 0.55, 18);
    expect(lrAt(schedule('linear', { minLrRatio: 0.1 }), 110)).toBeCloseTo(2e-5, 18);
    expect(lrAt(schedule('linear', { minLrRatio: 0.1 }), 5)).toBe(1e-4);
    expect(lrAt(schedule('constant', { minLrRatio: 0.1 }), 60)).toBe(2e-4);
  });

  it('rejects invalid configs and steps with OptimizerError', () => {
    const bad: Partial<ScheduleConfig>[] = [
      { kind: 'step' as ScheduleConfig['kind'] },
      { baseLr: -1 },
      { baseLr: Number.NaN },
      { warmupSteps: 1.5 },
      { totalSteps: -1 },
      { warmupSteps: 200 },
      { minLrRatio: 1.5 },
      { minLrRatio: -0.1 },
    ];
    for (const extra of bad) expect(() => lrAt(schedule('linear', extra), 1)).toThrow(OptimizerError);
    expect(() => lrAt(schedule('linear'), -1)).toThrow(/step/);
    expect(() => lrAt(schedule('linear'), 2.5)).toThrow(/step/);
    expect(lrAt(schedule('constant', { warmupSteps: 200 }), 100)).toBe(1e-4);
  });
});
