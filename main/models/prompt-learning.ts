// How a decoder sees the virtual tokens of PEFT's prompt learning (prompt tuning, P-tuning, prefix tuning), as
// PeftModelForCausalLM feeds them: V virtual tokens before each row's tokens at positions 0..V−1, every real token
// attends to all of them, and the real tokens' positions start at V. Callers give positions and masks for the real
// tokens alone (as without virtual tokens), so batches, packing and KV caches work unchanged.
//
// The virtual tokens only ever see each other (they come first, attention is causal), so in every layer they are a
// fixed set of V keys and values in front of each row's: prefix tuning gives those directly; prompt tuning's
// embeddings run through the layers as a stream of their own (V positions, not B·V) whose keys and values become the
// prefix. Nothing is concatenated along the sequence: a length V + seq has no spelling in the IR's symbolic dims, so
// the attention takes the prefix as a second block of scores under one softmax (attentionWithPrefix).
import {
  type Dim, type Tensor, add, div, exp, gather, matmul, maximum, mul, range, reduceMax, reduceSum, reshape, slice,
  stopGradient, sub, transpose, transposeLast, unsqueeze,
} from '../engine/ir/index.ts';
import { causalMask } from '../engine/nn/masks.ts';
import { ropeTables } from '../engine/nn/rope.ts';

/**
 * - `embeddings` (V, C), or (K, V, C) with row b using prompt b mod K (prompt ensembles): input embeddings run
 *   through every layer before each row's tokens (prompt tuning, P-tuning).
 * - `keyValues` (V, L, 2, Hkv, D): each layer's keys and values of the virtual tokens, used as they are (prefix
 *   tuning: no RoPE, no norm).
 */
export type VirtualTokens = { readonly embeddings: Tensor } | { readonly keyValues: Tensor };

export interface PrefixKeyValue {
  /** (B | 1, Hkv, V, D) */
  readonly key: Tensor;
  readonly value: Tensor;
}

export const virtualTokenCount = (vt: VirtualTokens): number => Number('embeddings' in vt ? vt.embeddings.shape.at(-2) : vt.keyValues.shape[0]);

/** Real tokens after V virtual ones: positions + V. */
export const shiftedPositions = (positionIds: Tensor, count: number): Tensor => add(positionIds, count, 'real_positions');

/** The virtual tokens' own stream: (K, V, C) embeddings at positions 0..V−1, causal among themselves. */
export const virtualStream = (embeddings: Tensor, inverseFrequencies: Float32Array) => {
  const g = embeddings.g;
  const V = Number(embeddings.shape.at(-2));
  const positions = unsqueeze(range(g, V, 'positions'), [0]); // (1, V)
  return {
    h: embeddings.rank === 2 ? unsqueeze(embeddings, [0], 'prompts') : embeddings, // (K, V, C)
    rope: ropeTables(positions, inverseFrequencies), // (1, 1, V, D)
    mask: causalMask(g, V), // (V, V)
  };
};

/** A layer's keys or values of K prompts (K, Hkv, V, D) → what row b sees: all rows share one (K = 1), else prompt b mod K. */
export const promptPrefix = (kv: PrefixKeyValue, batch: Dim): PrefixKeyValue => {
  const K = Number(kv.key.shape[0]);
  if (K === 1) return kv;
  const row = range(kv.key.g, batch, 'row');
  const prompt = sub(row, mul(div(row, K), K), 'prompt_of_row'); // (B,) b mod K
  return { key: gather(kv.key, prompt, 0, 'row_key'), value: gather(kv.value, prompt, 0, 'row_value') }; // (B, Hkv, V, D)
};

/** keyValues (V, L, 2, Hkv, D) → layer i's prefix keys and values, each (1, Hkv, V, D) (broadcast over rows). */
export const prefixKeyValues = (keyValues: Tensor) => {
  const [V, , , Hkv, D] = keyValues.shape as number[];
  const layered = transpose(keyValues, [1, 2, 3, 0, 4], 'by_layer'); // (L, 2, Hkv, V, D)
  const part = (layer: number, which: number): Tensor =>
    reshape(slice(layered, { starts: [layer, which], ends: [layer + 1, which + 1], axes: [0, 1] }), [1, Hkv!, V!, D!]); // (1, Hkv, V, D)
  return (layer: number): PrefixKeyValue => ({ key: part(layer, 0), value: part(layer, 1) });
};

/**
 * softmax([q·prefixᵀ ‖ q·kᵀ + mask]·scale)·[prefix values ‖ v] without the concatenation: both blocks of scores share
 * one running max and one normaliser. q (B, H, T, D); k, v (B, Hkv, S, D); prefix (B | 1, Hkv, V, D), visible to every
 * query; mask additive, broadcastable to (B, H, T, S). Grouped-query heads fold into rows as in
 * scaledDotProductAttention, so keys and values are never copied.
 */
export const attentionWithPrefix = (q: Tensor, k: Tensor, v: Tensor, mask: Tensor, prefix: PrefixKeyValue): Tensor => {
  const [, heads, t, headDim] = q.shape as [Dim, number, Dim, number];
  const kvHeads = Number(k.shape[1]);
  const groups = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const qg = groups === 1 ? q : reshape(q, [0, kvHeads, -1, headDim]); // (B, Hkv, G·T, D)
  let own = mul(matmul(qg, transposeLast(k)), scale); // (B, Hkv, G·T, S)
  if (groups === 1) own = add(own, mask);
  else {
    const s = own.shape[3]!;
    const m = mask.rank === 4 ? unsqueeze(mask, [1]) : mask; // (B, 1, 1, T, S) or (T, S)
    own = reshape(add(reshape(own, [0, kvHeads, groups, t, s]), m), [0, kvHeads, -1, s]); // (B, Hkv, G·T, S)
  }
  const fixed = mul(matmul(qg, transposeLast(prefix.key)), scale, 'prefix_scores'); // (B, Hkv, G·T, V)
  // The max only keeps exp() in range; it cancels in the ratio, so no gradient flows through it.
  const top = stopGradient(maximum(reduceMax(own, [-1]), reduceMax(fixed, [-1])), 'row_max'); // (B, Hkv, G·T, 1)
  const ownWeights = exp(sub(own, top)); // (B, Hkv, G·T, S)
  const fixedWeights = exp(sub(fixed, top), 'prefix_weights'); // (B, Hkv, G·T, V)
  const total = add(reduceSum(ownWeights, [-1]), reduceSum(fixedWeights, [-1]), 'normaliser'); // (B, Hkv, G·T, 1)
  const mixed = add(matmul(ownWeights, v), matmul(fixedWeights, prefix.value, 'prefix_values')); // (B, Hkv, G·T, D)
  return reshape(div(mixed, total), [0, heads, t, headDim]); // (B, H, T, D)
};
