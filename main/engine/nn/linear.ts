import type { Tensor } from '../ir/graph.ts';
import { add, gemm, matMulQ4, reduceSum, reshape, type Q4Weight } from '../ir/ops/index.ts';

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

/** y = x·dequant(W)ᵀ + b with W frozen in 4-bit blocks (MatMulNBits), on flattened rows like `linear`. */
export const linearQ4 = (x: Tensor, weight: Q4Weight, bias?: Tensor, name?: string): Tensor => {
  const rows = x.rank === 2 ? x : reshape(x, [-1, weight.k]); // (B·T, in)
  let y = matMulQ4(rows, weight, name); // (B·T, out)
  if (weight.mins) {
    // Σ_k x_k·m_block(k) = (x summed per block)·minsᵀ: a matmul K/blockSize wide.
    const blockSums = reduceSum(reshape(rows, [-1, weight.k / weight.blockSize, weight.blockSize]), [-1], { keepdims: false }); // (B·T, K/bs)
    y = gemm(blockSums, weight.mins, y, { transB: true, name: `${name ?? 'linear'}.mins` }); // (B·T, out)
  }
  if (bias) y = add(y, bias);
  return x.rank === 2 ? y : reshape(y, [...x.shape.slice(0, -1), weight.n]); // (B, T, out)
};
