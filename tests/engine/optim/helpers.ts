import { expect } from 'vitest';
import { OptimizerError } from '../../../main/engine/optim/index.ts';

/** Deterministic values in [-1, 1) (mulberry32), so runs are reproducible without fixtures. */
export function seededValues(seed: number, length: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export function expectBitIdentical(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  expect(Array.from(new Uint32Array(actual.buffer, actual.byteOffset, actual.length))).toEqual(
    Array.from(new Uint32Array(expected.buffer, expected.byteOffset, expected.length)),
  );
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs((actual[i] as number) - (expected[i] as number));
    if (!(diff <= tolerance)) {
      expect.fail(`element ${i}: ${actual[i]} vs ${expected[i]} (diff ${diff} > ${tolerance})`);
    }
  }
}

export function catchOptimizerError(run: () => unknown): OptimizerError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OptimizerError);
    return error as OptimizerError;
  }
  return expect.fail('expected an OptimizerError');
}
