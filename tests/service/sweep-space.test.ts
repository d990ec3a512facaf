import { describe, expect, it } from 'vitest';
import { RunConfigError } from '../../main/service/run-config.ts';
import { bestTrial, formatMatrix, sweepMatrix, sweepPoints } from '../../main/service/sweep-space.ts';
import { parseSweepConfig } from '../../main/service/sweep.ts';

describe('sweep space', () => {
  it('expands a grid over every field in row-major order', () => {
    const points = sweepPoints({ r: [4, 8], lora_alpha: [8, 16, 32], target_modules: [['q_proj'], 'all-linear'] }, { search: 'grid' }, 'x');
    expect(points).toHaveLength(12);
    expect(points[0]).toEqual({ r: 4, lora_alpha: 8, target_modules: ['q_proj'] });
    expect(points[1]).toEqual({ r: 4, lora_alpha: 8, target_modules: 'all-linear' });
    expect(points.at(-1)).toEqual({ r: 8, lora_alpha: 32, target_modules: 'all-linear' });
  });

  it('draws distinct seeded random points, from lists and (log-)ranges', () => {
    const space = { r: [4, 8, 16], lr: { min: 1e-5, max: 1e-2, log: true } };
    const a = sweepPoints(space, { search: 'random', trials: 6, seed: 3 }, 'x');
    expect(a).toEqual(sweepPoints(space, { search: 'random', trials: 6, seed: 3 }, 'x'));
    expect(a).not.toEqual(sweepPoints(space, { search: 'random', trials: 6, seed: 4 }, 'x'));
    expect(new Set(a.map((p) => JSON.stringify(p))).size).toBe(6);
    for (const p of a) {
      expect([4, 8, 16]).toContain(p.r);
      expect(p.lr as number).toBeGreaterThanOrEqual(1e-5);
      expect(p.lr as number).toBeLessThanOrEqual(1e-2);
    }
    // A small discrete space yields what it has.
    expect(sweepPoints({ r: [4, 8] }, { search: 'random', trials: 5 }, 'x')).toHaveLength(2);
  });

  it('refuses what cannot be swept, empty lists and ranges in a grid, naming the file and field', () => {
    expect(() => sweepPoints({ rank: [1] } as never, { search: 'grid' }, 'sweep.yaml')).toThrow(/sweep.yaml: sweep.space.rank cannot be swept/);
    expect(() => sweepPoints({ r: [] }, { search: 'grid' }, 'f')).toThrow(/sweep.space.r must be a non-empty list/);
    expect(() => sweepPoints({ lr: { min: 1, max: 2 } }, { search: 'grid' }, 'f')).toThrow(/a grid needs a list/);
    expect(() => sweepPoints({}, { search: 'grid' }, 'f')).toThrow(RunConfigError);
  });

  it('builds the r × alpha matrix from the best finished trial per cell and picks the best trial', () => {
    const outcomes = [
      { point: { r: 4, lora_alpha: 8 }, objective: 2.0 },
      { point: { r: 4, lora_alpha: 16 }, objective: 1.5 },
      { point: { r: 8, lora_alpha: 8 }, objective: 1.2, pruned: true },
      { point: { r: 8, lora_alpha: 16 }, objective: 1.4 },
      { point: { r: 8, lora_alpha: 16, lr: 1e-3 }, objective: 1.3 },
    ];
    const m = sweepMatrix(outcomes, { r: 8, lora_alpha: 8 });
    expect(m.rows).toEqual([4, 8]);
    expect(m.cols).toEqual([8, 16]);
    expect(m.cells).toEqual([[2.0, 1.5], [null, 1.3]]);
    expect(bestTrial(outcomes)).toBe(4);
    expect(formatMatrix(m)).toMatch(/1\.3000\*/);
    expect(bestTrial([{ point: {}, pruned: true, objective: 1 }])).toBeUndefined();
  });

  it('parses a sweep config and refuses halving outside fused mode', () => {
    const base = { name: 's', model: 'm', dataset: { path: 'd.jsonl' }, method: { peft_type: 'LORA', r: 8, target_modules: ['q_proj'] }, output: 'o' };
    const c = parseSweepConfig({ ...base, sweep: { space: { r: [4, 8] } } }, 'f.yaml');
    expect(c.sweep).toMatchObject({ mode: 'fused', search: 'grid' });
    expect(() => parseSweepConfig({ ...base, sweep: { mode: 'sequential', space: { r: [4] }, halving: { rungs: [2] } } }, 'f.yaml')).toThrow(/halving needs mode fused/);
    expect(() => parseSweepConfig(base, 'f.yaml')).toThrow(/f.yaml: sweep is missing/);
    expect(() => parseSweepConfig({ ...base, method: { peft_type: 'VERA' }, sweep: { space: { r: [4] } } }, 'f.yaml')).toThrow(/must be LORA/);
  });
});
