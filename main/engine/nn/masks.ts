// Additive attention masks: 0 where a query may attend to a key, a large negative number where it may not.
// The negative is finite (not -inf) so that a fully masked row gives a uniform softmax instead of NaN.
import {
  and,
  cast,
  equal,
  lessOrEqual,
  range,
  unsqueeze,
  where,
  type Dim,
  type GraphBuilder,
  type Tensor,
} from '../ir/index.ts';

export type MaskDType = 'float32' | 'float64' | 'float16';

/** The masked value: float16's lowest finite value for fp16, else -1e9 (far below any real score, far from overflow). */
export const maskValue = (dtype: MaskDType): number => (dtype === 'float16' ? -65504 : -1e9);

const scalar = (g: GraphBuilder, value: number, dtype: 'float32' | 'float64'): Tensor =>
  g.constant(dtype === 'float64' ? new Float64Array([value]) : new Float32Array([value]), dtype);

/** Additive mask from a bool "may attend" tensor (float16 is selected in float32 and cast: ORT's CPU Where lacks fp16). */
const additive = (allowed: Tensor, dtype: MaskDType): Tensor => {
  const sel = dtype === 'float64' ? 'float64' : 'float32';
  const m = where(allowed, scalar(allowed.g, 0, sel), scalar(allowed.g, maskValue(dtype), sel));
  return dtype === 'float16' ? cast(m, 'float16') : m;
};

/** [seq, seq] additive causal mask: row = query position, column = key position; keys after the query are masked. */
export const causalMask = (g: GraphBuilder, seq: Dim, dtype: MaskDType = 'float32'): Tensor => {
  const pos = range(g, seq);
  return additive(lessOrEqual(unsqueeze(pos, [0]), unsqueeze(pos, [1])), dtype);
};

/**
 * Packed sequences: from int64 segment ids [batch, seq], an additive mask [batch, 1, seq, seq] letting a
 * query see the keys of its own segment at positions ≤ its own (causal within each segment).
 */
export const blockDiagonalCausalMask = (segmentIds: Tensor, dtype: MaskDType = 'float32'): Tensor => {
  if (segmentIds.rank !== 2 || segmentIds.dtype !== 'int64') {
    throw new Error(`blockDiagonalCausalMask needs int64 segment ids [batch, seq], got ${segmentIds.dtype}[${segmentIds.shape.join(', ')}]`);
  }
  const pos = range(segmentIds.g, segmentIds.shape[1]!);
  const causal = lessOrEqual(unsqueeze(pos, [0]), unsqueeze(pos, [1])); // [q, k]: k ≤ q
  const same = equal(unsqueeze(segmentIds, [2]), unsqueeze(segmentIds, [1])); // [b, q, k]
  return unsqueeze(additive(and(same, causal), dtype), [1]);
};
