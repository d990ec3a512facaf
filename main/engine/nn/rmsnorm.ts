import type { Tensor } from '../ir/graph.ts';
import { add, mul, reciprocal, reduceMean, sqrt } from '../ir/ops/index.ts';

/** x / sqrt(mean(x², last axis) + eps) · weight, as LlamaRMSNorm. */
export const rmsNorm = (x: Tensor, weight: Tensor, eps: number): Tensor => {
  const meanSquare = reduceMean(mul(x, x), [-1]); // (..., 1)
  const inv = reciprocal(sqrt(add(meanSquare, eps))); // (..., 1)
  return mul(mul(x, inv), weight); // (..., C)
};
