/** Packing, batches (int64, padding conventions, seeded and length-grouped order) and the train/eval split. */
import { describe, expect, it } from 'vitest';
import {
  batchPlan,
  batches,
  collate,
  IGNORE_INDEX,
  packExamples,
  packingEfficiency,
  splitTrainEval,
  type PackableExample,
} from '../../../main/train/dataset/index.ts';
import { createRng } from '../../../main/engine/random.ts';

/** An example of n tokens (ids start, start+1, ...) whose second half is trained. */
const example = (n: number, start = 1): PackableExample => {
  const inputIds = Array.from({ length: n }, (_, k) => start + k);
  return { inputIds, labels: inputIds.map((id, k) => (k >= n / 2 ? id : IGNORE_INDEX)) };
};

describe('packExamples', () => {
  it('fills rows first-fit by decreasing length, segments and positions per example, no cross-example label', () => {
    const examples = [example(6, 100), example(3, 200), example(5, 300), example(2, 400), example(4, 500)];
    const rows = packExamples(examples, { maxLength: 8 });
    expect(rows.map((r) => r.examples)).toEqual([[0, 3], [2, 1], [4]]);
    const [first] = rows;
    expect(first!.inputIds).toEqual([100, 101, 102, 103, 104, 105, 400, 401]);
    expect(first!.positionIds).toEqual([0, 1, 2, 3, 4, 5, 0, 1]);
    expect(first!.segmentIds).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    // Each example's first label is masked: the last token of one example never predicts the next one's first.
    expect(first!.labels).toEqual([IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 103, 104, 105, IGNORE_INDEX, 401]);
    expect(packingEfficiency(rows, 8)).toBeCloseTo(20 / 24);
  });

  it('keeps every token exactly once and never exceeds the length (random sizes)', () => {
    const rng = createRng(7);
    const examples = Array.from({ length: 300 }, (_, i) => example(1 + Math.floor(rng() * 64), i * 1000));
    const rows = packExamples(examples, { maxLength: 64 });
    expect(Math.max(...rows.map((r) => r.inputIds.length))).toBeLessThanOrEqual(64);
    expect(rows.flatMap((r) => r.examples).sort((a, b) => a - b)).toEqual(examples.map((_, i) => i));
    expect(rows.reduce((n, r) => n + r.inputIds.length, 0)).toBe(examples.reduce((n, e) => n + e.inputIds.length, 0));
    const total = examples.reduce((n, e) => n + e.inputIds.length, 0);
    expect(rows.length).toBeLessThanOrEqual(Math.ceil((total / 64) * 1.1) + 1);
    const inOrder = packExamples(examples, { maxLength: 64, strategy: 'in-order' });
    expect(inOrder.flatMap((r) => r.examples)).toEqual(examples.map((_, i) => i));
    expect(inOrder.length).toBeGreaterThanOrEqual(rows.length);
  });

  it('refuses an example longer than the row', () => {
    expect(() => packExamples([{ ...example(9), line: 4 }], { maxLength: 8 })).toThrow(/example 0 \(line 4\) has 9 tokens, more than the packing length 8/);
  });
});

describe('batches', () => {
  it('are int64 (B, T) with padding: pad id, label -100, position 0, segment -1', () => {
    const rows = packExamples([example(3, 10), example(2, 20), example(4, 30)], { maxLength: 5 });
    const batch = collate(rows, [0, 1], { padId: 0 });
    expect(batch.inputIds).toBeInstanceOf(BigInt64Array);
    expect(batch.batchSize).toBe(2);
    expect(batch.seqLen).toBe(5);
    const at = (a: BigInt64Array, b: number): number[] => Array.from(a.subarray(b * 5, b * 5 + 5), Number);
    expect(rows[0]!.examples).toEqual([2]);
    expect(at(batch.inputIds, 0)).toEqual([30, 31, 32, 33, 0]);
    expect(at(batch.labels, 0)).toEqual([IGNORE_INDEX, IGNORE_INDEX, 32, 33, IGNORE_INDEX]);
    expect(at(batch.positionIds, 0)).toEqual([0, 1, 2, 3, 0]);
    expect(at(batch.segmentIds, 0)).toEqual([0, 0, 0, 0, -1]);
    expect(at(batch.segmentIds, 1)).toEqual([0, 0, 0, 1, 1]);
    expect(at(batch.positionIds, 1)).toEqual([0, 1, 2, 0, 1]);
    expect(batch.tokens).toBe(9);
    expect(batch.trainedTokens).toBe(2 + 1 + 1);
  });

  it('pad to a multiple or a fixed length; plain examples are one segment each', () => {
    const plain = [example(3), example(5)];
    expect(collate(plain, [0, 1], { padId: 9, padToMultipleOf: 8 }).seqLen).toBe(8);
    const fixed = collate(plain, [0], { padId: 9, fixedLength: 6 });
    expect(Array.from(fixed.inputIds, Number)).toEqual([1, 2, 3, 9, 9, 9]);
    expect(Array.from(fixed.segmentIds, Number)).toEqual([0, 0, 0, -1, -1, -1]);
    expect(() => collate(plain, [1], { padId: 0, fixedLength: 4 })).toThrow(/does not fit the fixed length 4/);
  });

  it('the order is a pure function of (seed, epoch); every row once per epoch', () => {
    const lengths = Array.from({ length: 23 }, (_, i) => 1 + ((i * 7) % 13));
    const plan = batchPlan(lengths, { batchSize: 4, seed: 3, epoch: 1 });
    expect(batchPlan(lengths, { batchSize: 4, seed: 3, epoch: 1 })).toEqual(plan);
    expect(batchPlan(lengths, { batchSize: 4, seed: 3, epoch: 2 })).not.toEqual(plan);
    expect(plan.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    expect(plan.map((b) => b.length)).toEqual([4, 4, 4, 4, 4, 3]);
    expect(batchPlan(lengths, { batchSize: 4, dropLast: true }).map((b) => b.length)).toEqual([4, 4, 4, 4, 4]);
    expect(batchPlan(lengths, { batchSize: 4, shuffle: false })[0]).toEqual([0, 1, 2, 3]);
  });

  it('length grouping pads less, and longestFirst puts the longest row in the first batch', () => {
    const rng = createRng(11);
    const lengths = Array.from({ length: 400 }, () => 1 + Math.floor(rng() * 200));
    const padding = (plan: number[][]): number =>
      plan.reduce((n, b) => n + b.length * Math.max(...b.map((i) => lengths[i]!)) - b.reduce((s, i) => s + lengths[i]!, 0), 0);
    const grouped = batchPlan(lengths, { batchSize: 8, seed: 1, groupByLength: true, groupWindow: 10 });
    const random = batchPlan(lengths, { batchSize: 8, seed: 1 });
    expect(padding(grouped)).toBeLessThan(padding(random) / 3);
    expect(grouped.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    const first = batchPlan(lengths, { batchSize: 8, seed: 1, groupByLength: true, longestFirst: true })[0]!;
    expect(Math.max(...first.map((i) => lengths[i]!))).toBe(Math.max(...lengths));
  });

  it('the generator yields the plan in order', () => {
    const rows = [example(2), example(3), example(4)];
    const got = [...batches(rows, { batchSize: 2, padId: 0, seed: 5 })].map((b) => [...b.rows]);
    expect(got).toEqual(batchPlan([2, 3, 4], { batchSize: 2, seed: 5 }));
  });
});

describe('splitTrainEval', () => {
  const items = Array.from({ length: 50 }, (_, i) => i);

  it('is seeded and deterministic, by example, each part in file order', () => {
    const a = splitTrainEval(items, { evalFraction: 0.1, seed: 42 });
    expect(a).toEqual(splitTrainEval(items, { evalFraction: 0.1, seed: 42 }));
    expect(a.eval).toHaveLength(5);
    expect(a.train).toHaveLength(45);
    expect([...a.train, ...a.eval].sort((x, y) => x - y)).toEqual(items);
    expect(a.eval).toEqual([...a.eval].sort((x, y) => x - y));
    expect(splitTrainEval(items, { evalFraction: 0.1, seed: 43 }).eval).not.toEqual(a.eval);
  });

  it('holds out at least one and leaves at least one; exact counts; bad input refused', () => {
    expect(splitTrainEval([1, 2, 3], { evalFraction: 0.01 }).eval).toHaveLength(1);
    expect(splitTrainEval([1, 2], { evalFraction: 0.9 }).train).toHaveLength(1);
    expect(splitTrainEval(items, { evalCount: 7, seed: 1 }).eval).toHaveLength(7);
    expect(splitTrainEval(items, { evalFraction: 0 }).eval).toEqual([]);
    expect(() => splitTrainEval(items, { evalFraction: 1 })).toThrow(RangeError);
    expect(() => splitTrainEval(items, { evalCount: 51 })).toThrow(RangeError);
  });
});
