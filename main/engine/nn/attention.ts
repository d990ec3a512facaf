import type { Tensor } from '../ir/graph.ts';
import type { Dim } from '../ir/types.ts';
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
 * The scope a decoder layer builds its attention core in (`model.layers.3.self_attn.sdpa.*`): rewrites that replace
 * the attention (LongLoRA's S²-Attn) find it there.
 */
export const ATTENTION_SCOPE = 'self_attn.sdpa';

/**
 * softmax(q·kᵀ·scale + mask)·v. q (B, H, T, D); k, v (B, Hkv, S, D); mask additive, broadcastable to
 * (B, H, T, S). With grouped-query attention the G = H/Hkv query heads of a key/value head are folded into its
 * rows — (B, Hkv, G·T, D) — so keys and values are never copied G times.
 */
export const scaledDotProductAttention = (q: Tensor, k: Tensor, v: Tensor, mask?: Tensor): Tensor => {
  const [, heads, t, headDim] = q.shape as [Dim, number, Dim, number];
  const kvHeads = Number(k.shape[1]);
  const groups = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  if (groups === 1) {
    const scores = mul(matmul(q, transposeLast(k)), scale); // (B, H, T, S)
    return matmul(softmax(mask ? add(scores, mask) : scores, -1), v); // (B, H, T, D)
  }
  const qg = reshape(q, [0, kvHeads, -1, headDim]); // (B, Hkv, G·T, D)
  const scores = mul(matmul(qg, transposeLast(k)), scale); // (B, Hkv, G·T, S)
  let probs: Tensor;
  if (mask) {
    const s = scores.shape[3]!;
    const split = reshape(scores, [0, kvHeads, groups, t, s]); // (B, Hkv, G, T, S)
    const m = mask.rank === 4 ? unsqueeze(mask, [1]) : mask; // (B, 1, 1, T, S) or (T, S)
    probs = reshape(softmax(add(split, m), -1), [0, kvHeads, -1, s]); // (B, Hkv, G·T, S)
  } else {
    probs = softmax(scores, -1);
  }
  return reshape(matmul(probs, v), [0, heads, t, headDim]); // (B, H, T, D)
};
