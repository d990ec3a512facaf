import type { Tensor } from '../ir/graph.ts';
import { add, cast, concat, cos, matmul, mul, neg, sin, slice, unsqueeze, END } from '../ir/index.ts';

export type RopeScalingSpec =
  | { readonly type: 'default' }
  | { readonly type: 'freq_factors'; readonly factors: Float32Array }
  | { readonly type: 'linear'; readonly factor: number }
  | { readonly type: 'llama3'; readonly factor: number; readonly lowFreqFactor: number; readonly highFreqFactor: number; readonly originalMaxPositionEmbeddings: number };

/** Inverse frequencies θ^(−2i/d) with the model's scaling, as transformers computes them (float32). */
export const ropeInverseFrequencies = (headDim: number, theta: number, scaling: RopeScalingSpec): Float32Array => {
  const base = Float32Array.from({ length: headDim / 2 }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim));
  if (scaling.type === 'default') return base;
  if (scaling.type === 'freq_factors') {
    if (scaling.factors.length !== base.length) throw new Error(`rope frequency factors: ${scaling.factors.length} values for ${base.length} frequencies`);
    return base.map((f, i) => f / scaling.factors[i]!);
  }
  if (scaling.type === 'linear') return base.map((f) => f / scaling.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: ctx } = scaling;
  const lowWavelen = ctx / lowFreqFactor;
  const highWavelen = ctx / highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (ctx / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
};

/** cos and sin tables (B, 1, T, D) for int64 position ids (B, T). */
export const ropeTables = (positions: Tensor, invFreq: Float32Array): { cos: Tensor; sin: Tensor } => {
  const g = positions.g;
  const freqs = g.constant(invFreq, 'float32', [1, invFreq.length]); // (1, D/2)
  const angles = matmul(unsqueeze(cast(positions, 'float32'), [-1]), freqs); // (B, T, D/2)
  const emb = unsqueeze(concat([angles, angles], -1), [1]); // (B, 1, T, D)
  return { cos: cos(emb), sin: sin(emb) };
};

/** x·cos + rotate_half(x)·sin with rotate_half(x) = [−x₂, x₁]. x (B, H, T, D) */
export const applyRope = (x: Tensor, t: { cos: Tensor; sin: Tensor }): Tensor => {
  const half = Number(x.shape[x.rank - 1]) / 2;
  const x1 = slice(x, { starts: [0], ends: [half], axes: [-1] }); // (B, H, T, D/2)
  const x2 = slice(x, { starts: [half], ends: [END], axes: [-1] }); // (B, H, T, D/2)
  const rotated = concat([neg(x2), x1], -1); // (B, H, T, D)
  return add(mul(x, t.cos), mul(rotated, t.sin));
};
