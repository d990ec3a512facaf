import { createRng } from '../engine/random.ts';
import type { Example } from './batch.ts';

export interface DataPlan {
  readonly microBatchSize: number;
  readonly maxLength: number;
  /** Pack several examples into each row (block-diagonal attention keeps them apart). */
  readonly packing: boolean;
  readonly seed: number;
}

export class DataPlanError extends Error {
  override readonly name = 'DataPlanError';
}

/**
 * The micro-batches of one epoch, a pure function of (examples, epoch, plan): a seeded shuffle, then rows (packed
 * greedily up to maxLength, or one example each), then groups of microBatchSize rows. Resuming at (epoch, index)
 * replays exactly the same batches.
 */
export const epochMicroBatches = (examples: readonly Example[], epoch: number, plan: DataPlan): Example[][][] => {
  const order = examples.map((_, i) => i);
  const rng = createRng((plan.seed * 1_000_003 + epoch * 7919) >>> 0);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const rows: Example[][] = [];
  let row: Example[] = [];
  let length = 0;
  for (const i of order) {
    const ex = examples[i]!;
    if (ex.inputIds.length > plan.maxLength) {
      throw new DataPlanError(`example ${i} has ${ex.inputIds.length} tokens, more than max length ${plan.maxLength} (truncate it when tokenizing)`);
    }
    if (row.length > 0 && (!plan.packing || length + ex.inputIds.length > plan.maxLength)) {
      rows.push(row);
      row = [];
      length = 0;
    }
    row.push(ex);
    length += ex.inputIds.length;
  }
  if (row.length) rows.push(row);
  const batches: Example[][][] = [];
  for (let i = 0; i < rows.length; i += plan.microBatchSize) batches.push(rows.slice(i, i + plan.microBatchSize));
  return batches;
};

/** The data plan a run's hyperparameters imply. */
export const dataPlan = (h: { readonly microBatchSize: number; readonly maxLength: number; readonly packing?: boolean; readonly seed?: number }): DataPlan => ({
  microBatchSize: h.microBatchSize,
  maxLength: h.maxLength,
  packing: h.packing ?? true,
  seed: h.seed ?? 0,
});
