import type { HostTensor } from '../engine/onnx/runtime.ts';
import { TRAIN } from './train-graph.ts';

/** One tokenized training example: labels aligned with the input ids (−100 = no loss), as transformers has them. */
export interface Example {
  readonly inputIds: readonly number[];
  readonly labels: readonly number[];
}

/** A micro-batch: rows of packed examples, ready to feed except for the normalizer. */
export interface MicroBatch {
  readonly feeds: Record<string, HostTensor>;
  /** Target tokens in this micro-batch. */
  readonly targets: number;
  /** Real (non-padding) tokens. */
  readonly tokens: number;
}

const IGNORE = -100;

/**
 * Packs rows of examples into one micro-batch (B, T) with T = the longest row: each example keeps its own causal
 * attention (segment ids) and positions from 0; the loss is taken where the next token of the same example is a
 * label, so no position predicts across an example boundary and padding carries none.
 */
export const packMicroBatch = (rows: readonly (readonly Example[])[], padId = 0): MicroBatch => {
  const B = rows.length;
  const T = Math.max(1, ...rows.map((r) => r.reduce((n, e) => n + e.inputIds.length, 0)));
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const pos = new BigInt64Array(B * T);
  const seg = new BigInt64Array(B * T).fill(-1n);
  const lossPositions: number[] = [];
  const lossTargets: number[] = [];
  let tokens = 0;
  rows.forEach((row, b) => {
    let t = 0;
    row.forEach((ex, s) => {
      if (ex.labels.length !== ex.inputIds.length) throw new Error(`example ${s} of row ${b}: ${ex.inputIds.length} ids but ${ex.labels.length} labels`);
      for (let i = 0; i < ex.inputIds.length; i++) {
        const at = b * T + t + i;
        ids[at] = BigInt(ex.inputIds[i]!);
        pos[at] = BigInt(i);
        seg[at] = BigInt(s);
        const next = ex.labels[i + 1];
        if (next !== undefined && next !== IGNORE) {
          lossPositions.push(at);
          lossTargets.push(next);
        }
      }
      t += ex.inputIds.length;
      tokens += ex.inputIds.length;
    });
  });
  const i64 = (values: readonly number[]) => BigInt64Array.from(values, BigInt);
  return {
    feeds: {
      [TRAIN.inputIds]: { dtype: 'int64', shape: [B, T], data: ids },
      [TRAIN.positionIds]: { dtype: 'int64', shape: [B, T], data: pos },
      [TRAIN.segmentIds]: { dtype: 'int64', shape: [B, T], data: seg },
      [TRAIN.lossPositions]: { dtype: 'int64', shape: [lossPositions.length], data: i64(lossPositions) },
      [TRAIN.lossTargets]: { dtype: 'int64', shape: [lossTargets.length], data: i64(lossTargets) },
    },
    targets: lossPositions.length,
    tokens,
  };
};

export const withNormalizer = (batch: MicroBatch, totalTargets: number): Record<string, HostTensor> => ({
  ...batch.feeds,
  [TRAIN.lossNormalizer]: { dtype: 'float32', shape: [], data: new Float32Array([Math.max(1, totalTargets)]) },
});
