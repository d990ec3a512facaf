// LongLoRA's shifted sparse attention (S²-Attn; Chen et al. 2023, dvlab-research/LongLoRA llama_attn_replace.py),
// the training-time replacement of full causal attention: the T tokens are cut into groups of G and each query
// attends causally inside its own group only, so the scores are (T/G)·G² instead of T². To let information cross
// group borders, the upper half of the heads (heads H//2 … H−1) is grouped G/2 later: [0, G/2), [G/2, 3G/2), …,
// [T − G/2, T), as the reference's flash-attention training path (forward_flashattn) cuts it. Its other path
// (forward_noflashattn) rolls the sequence instead, which puts the last G/2 tokens in front of the first G/2 in
// one group: those first tokens then see the sequence's end, future tokens a causal LM learns to lean on (trained
// that way, the tiny model of tests/peft/longlora-extend.test.ts extended worse). At inference: full attention.
import type { Tensor } from '../ir/graph.ts';
import { add, concat, matmul, mul, reshape, slice, softmax, transposeLast } from '../ir/index.ts';
import { repeatKv } from './attention.ts';
import { causalMask, type MaskDType } from './masks.ts';

export interface S2AttentionOptions {
  /** Tokens per group G: T must be a multiple of it, and G even (half the heads' groups start G/2 later). */
  readonly groupSize: number;
}

export class S2AttentionError extends Error {
  override readonly name = 'S2AttentionError';
}

const staticDim = (x: Tensor, axis: number, what: string): number => {
  const d = x.shape[axis];
  if (typeof d !== 'number') throw new S2AttentionError(`S²-Attn needs a fixed ${what}; '${x.name}' has ${String(d)} (shape [${x.shape.join(', ')}])`);
  return d;
};

/** Positions [from, to) of (B, H, T, D). */
const positionRange = (x: Tensor, from: number, to: number): Tensor =>
  from === 0 && to === x.shape[2] ? x : slice(x, { starts: [from], ends: [to], axes: [2] });

/** Heads [from, to) of (B, H, T, D). */
const headRange = (x: Tensor, from: number, to: number): Tensor =>
  from === 0 && to === x.shape[1] ? x : slice(x, { starts: [from], ends: [to], axes: [1] });

/**
 * The key/value heads that query heads [from, to) read, (B, Hkv', T, D): a slice of the shared heads when the range
 * covers whole query groups (grouped-query attention stays folded), else the heads repeated per query head.
 */
const kvForQueryHeads = (x: Tensor, from: number, to: number, queriesPerKv: number): Tensor =>
  from % queriesPerKv === 0 && to % queriesPerKv === 0
    ? headRange(x, from / queriesPerKv, to / queriesPerKv)
    : headRange(repeatKv(x, queriesPerKv), from, to);

const maskDtype = (x: Tensor): MaskDType => (x.dtype === 'float16' || x.dtype === 'float64' ? x.dtype : 'float32');

/** Causal attention inside consecutive groups of G tokens. q (B, h, T, D); k, v (B, hk, T, D) with hk dividing h. */
const groupedCausalAttention = (q: Tensor, k: Tensor, v: Tensor, G: number): Tensor => {
  const [h, T, D] = [staticDim(q, 1, 'head count'), staticDim(q, 2, 'sequence length'), staticDim(q, 3, 'head size')];
  const hk = staticDim(k, 1, 'key/value head count');
  const n = T / G;
  // The h/hk query heads of a key/value head share its keys through a broadcast axis: no copy of k or v.
  const qg = reshape(q, [0, hk, h / hk, n, G, D]); // (B, hk, h/hk, n, G, D)
  const kg = reshape(k, [0, hk, 1, n, G, D]); // (B, hk, 1, n, G, D)
  const vg = reshape(v, [0, hk, 1, n, G, D]); // (B, hk, 1, n, G, D)
  const scores = mul(matmul(qg, transposeLast(kg)), 1 / Math.sqrt(D)); // (B, hk, h/hk, n, G, G)
  const probs = softmax(add(scores, causalMask(q.g, G, maskDtype(q))), -1); // (B, hk, h/hk, n, G, G)
  return reshape(matmul(probs, vg), [0, h, T, D]); // (B, h, T, D)
};

/** Positions [start, end) attending in groups of `group` tokens. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly group: number;
}

/**
 * S²-Attn of q (B, H, T, D) over k, v (B, Hkv, T, D), after RoPE, with a fixed T; returns (B, H, T, D) like
 * scaledDotProductAttention. Causal by construction: a padding or packing mask does not apply (rows must be single
 * unpadded sequences).
 */
export const shiftedSparseAttention = (q: Tensor, k: Tensor, v: Tensor, o: S2AttentionOptions): Tensor => {
  const [H, T] = [staticDim(q, 1, 'head count'), staticDim(q, 2, 'sequence length')];
  const Hkv = staticDim(k, 1, 'key/value head count');
  const G = o.groupSize;
  if (!(Number.isInteger(G) && G >= 2 && G % 2 === 0)) throw new S2AttentionError(`S²-Attn group size must be an even integer ≥ 2, got ${G}`);
  if (T % G !== 0) throw new S2AttentionError(`S²-Attn: sequence length ${T} is not a multiple of the group size ${G}`);
  if (H % Hkv !== 0) throw new S2AttentionError(`S²-Attn: ${H} query heads do not share ${Hkv} key/value heads evenly`);
  const queriesPerKv = H / Hkv;
  /** Heads [from, to) attending in groups of G, or (shifted) in groups of G that start G/2 later. */
  const heads = (from: number, to: number, shifted: boolean): Tensor => {
    const [qs, ks, vs] = [headRange(q, from, to), kvForQueryHeads(k, from, to, queriesPerKv), kvForQueryHeads(v, from, to, queriesPerKv)];
    // Shifted: the first and the last G/2 tokens are groups of their own, whole groups in between.
    const spans: readonly Span[] = shifted
      ? [{ start: 0, end: G / 2, group: G / 2 }, { start: G / 2, end: T - G / 2, group: G }, { start: T - G / 2, end: T, group: G / 2 }]
      : [{ start: 0, end: T, group: G }];
    const outs = spans
      .filter((s) => s.end > s.start)
      .map((s) => groupedCausalAttention(positionRange(qs, s.start, s.end), positionRange(ks, s.start, s.end), positionRange(vs, s.start, s.end), s.group)); // (B, h, end − start, D)
    return outs.length === 1 ? outs[0]! : concat(outs, 2); // (B, to − from, T, D)
  };
  const half = Math.floor(H / 2);
  const shifted = heads(half, H, true);
  return half === 0 ? shifted : concat([heads(0, half, false), shifted], 1); // (B, H, T, D)
};
