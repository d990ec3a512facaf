import type { Tensor } from '../ir/graph.ts';
import { add, expand, matmul, mul, reshape, softmax, transpose, transposeLast, unsqueeze } from '../ir/ops/index.ts';

/** (B, T, H·D) → (B, H, T, D) */
export const splitHeads = (x: Tensor, heads: number, headDim: number): Tensor =>
  transpose(reshape(x, [0, 0, heads, headDim]), [0, 2, 1, 3]);

/** (B, H, T, D) → (B, T, H·D) */
export const mergeHeads = (x: Tensor): Tensor => {
  const [, heads, , headDim] = x.shape;
  return reshape(transpose(x, [0, 2, 1, 3]), [0, 0, Number(heads) * Number(headDim)]);
};

/** Grouped-query attention: each of the Hkv key/value heads serves H/Hkv query heads. (B, Hkv, T, D) → (B, H, T, D) */
export const repeatKv = (x: Tensor, groups: number): Tensor => {
  if (groups === 1) return x;
  const [b, hkv, t, d] = x.shape;
  const wide = expand(unsqueeze(x, [2]), [b!, hkv!, groups, t!, d!]); // (B, Hkv, G, T, D)
  return reshape(wide, [0, Number(hkv) * groups, t!, d!]);
};

/**
 * softmax(q·kᵀ·scale + mask)·v. q (B, H, T, D); k, v (B, Hkv, S, D); mask additive, broadcastable to
 * (B, H, T, S).
 */
export const scaledDotProductAttention = (q: Tensor, k: Tensor, v: Tensor, mask?: Tensor): Tensor => {
  const heads = Number(q.shape[1]);
  const groups = heads / Number(k.shape[1]);
  const headDim = Number(q.shape[3]);
  const scores = mul(matmul(q, transposeLast(repeatKv(k, groups))), 1 / Math.sqrt(headDim)); // (B, H, T, S)
  const probs = softmax(mask ? add(scores, mask) : scores, -1); // (B, H, T, S)
  return matmul(probs, repeatKv(v, groups)); // (B, H, T, D)
};
