import { describe, expect, it } from 'vitest';
import { clipGradNorm, globalGradNorm, OptimizerError } from '../../../main/engine/optim/index.ts';

const grads = (): Map<string, Float32Array> =>
  new Map([
    ['a', Float32Array.from([3, 4])],
    ['b', Float32Array.from([12])],
  ]);

describe('globalGradNorm', () => {
  it('is the L2 norm over all tensors together', () => {
    expect(globalGradNorm(grads())).toBe(13);
    expect(globalGradNorm([Float32Array.from([3]), Float32Array.from([4])])).toBe(5);
    expect(globalGradNorm(new Map())).toBe(0);
  });

  it('accumulates in float64, so large fp32 values do not overflow', () => {
    const big = new Float32Array(4).fill(3e38);
    expect(globalGradNorm([big])).toBeCloseTo(6e38, -32);
  });
});

describe('clipGradNorm', () => {
  it('scales in place by max_norm / (total_norm + 1e-6), as torch does', () => {
    const g = grads();
    const scale = 6.5 / (13 + 1e-6);
    expect(clipGradNorm(g, 6.5)).toEqual({ norm: 13, scale });
    expect(Array.from(g.get('a') as Float32Array)).toEqual([Math.fround(3 * scale), Math.fround(4 * scale)]);
    expect(Array.from(g.get('b') as Float32Array)).toEqual([Math.fround(12 * scale)]);
    expect(globalGradNorm(g)).toBeCloseTo(6.5, 5);
  });

  it('clamps the coefficient to 1 and leaves small gradients unchanged', () => {
    const g = grads();
    expect(clipGradNorm(g, 100)).toEqual({ norm: 13, scale: 1 });
    expect(clipGradNorm(g, 13 + 1e-6)).toEqual({ norm: 13, scale: 1 });
    expect(Array.from(g.get('a') as Float32Array)).toEqual([3, 4]);
  });

  it('still scales slightly when the norm equals maxNorm, because of the 1e-6', () => {
    expect(clipGradNorm(grads(), 13).scale).toBe(13 / (13 + 1e-6));
  });

  it('returns a non-finite norm without scaling', () => {
    const nan = new Map([['a', Float32Array.from([1, Number.NaN])]]);
    const clipped = clipGradNorm(nan, 1);
    expect(clipped.norm).toBeNaN();
    expect(clipped.scale).toBe(1);
    expect(nan.get('a')?.[0]).toBe(1);

    const inf = [Float32Array.from([Number.POSITIVE_INFINITY, 2])];
    expect(clipGradNorm(inf, 1)).toEqual({ norm: Number.POSITIVE_INFINITY, scale: 1 });
    expect(inf[0]?.[1]).toBe(2);
  });

  it('rejects a non-positive or non-finite maxNorm', () => {
    for (const maxNorm of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => clipGradNorm(grads(), maxNorm)).toThrow(OptimizerError);
    }
  });
});
