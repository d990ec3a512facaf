import type { Tensor } from '../ir/graph.ts';
import { gemm, reshape } from '../ir/ops/index.ts';

/**
 * y = x·Wᵀ + b with W stored as Hugging Face does, (out, in). Runs as one Gemm(transB) on the flattened
 * rows so a frozen W is never transposed or copied.
 */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor, name?: string): Tensor => {
  const inFeatures = x.shape[x.rank - 1]!;
  const outFeatures = weight.shape[0]!;
  if (x.rank === 2) return gemm(x, weight, bias, { transB: true, ...(name ? { name } : {}) });
  const rows = reshape(x, [-1, inFeatures]); // (B·T, in)
  const y = gemm(rows, weight, bias, { transB: true, ...(name ? { name } : {}) }); // (B·T, out)
  return reshape(y, [...x.shape.slice(0, -1), outFeatures]); // (B, T, out)
};
