// Small models written directly in the IR, used to show that the engine trains end to end.
import { GraphBuilder, add, matmul, relu, reshape, type Graph } from '../../../main/engine/ir/index.ts';
import { linear, mergeHeads, rmsNorm, scaledDotProductAttention, softCrossEntropy, splitHeads, swiGlu } from '../../../main/engine/nn/index.ts';
import type { HostTensor } from '../../../main/engine/onnx/runtime.ts';
import type { Param } from '../../../main/engine/optim/index.ts';
import { seededRandom } from '../../helpers/random.ts';

export interface TinyTask {
  readonly graph: Graph;
  readonly params: Param[];
  readonly batch: Record<string, HostTensor>;
}

const initParam = (name: string, shape: number[], scale: number, seed: number, fill?: number): Param => {
  const rnd = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, data: Float32Array.from({ length: n }, () => (fill ?? (rnd() * 2 - 1) * scale)) };
};

const oneHot = (ids: number[], classes: number): Float32Array => {
  const out = new Float32Array(ids.length * classes);
  ids.forEach((id, i) => (out[i * classes + id] = 1));
  return out;
};

/** Two-layer MLP classifying points by a random linear teacher. */
export const mlpTask = (): TinyTask => {
  const [n, features, hidden, classes] = [64, 8, 32, 4];
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['batch', features]);
  const targets = g.input('targets', 'float32', ['batch', classes]);
  const shapes: Record<string, number[]> = { 'fc1.weight': [hidden, features], 'fc1.bias': [hidden], 'fc2.weight': [classes, hidden], 'fc2.bias': [classes] };
  const w = Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, g.input(k, 'float32', s)]));
  const h = g.scope('fc1', () => relu(linear(x, w['fc1.weight']!, w['fc1.bias']!)));
  const logits = g.scope('fc2', () => linear(h, w['fc2.weight']!, w['fc2.bias']!));
  g.output(softCrossEntropy(logits, targets), 'loss');

  const rnd = seededRandom(7);
  const xs = Float32Array.from({ length: n * features }, () => rnd() * 2 - 1);
  const teacher = Float32Array.from({ length: classes * features }, () => rnd() * 2 - 1);
  const labels = Array.from({ length: n }, (_, i) => {
    let best = 0;
    let bestScore = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let f = 0; f < features; f++) s += teacher[c * features + f]! * xs[i * features + f]!;
      if (s > bestScore) [best, bestScore] = [c, s];
    }
    return best;
  });
  const params = Object.entries(shapes).map(([k, s], i) =>
    initParam(k, s, k.endsWith('bias') ? 0 : 1 / Math.sqrt(s[1]!), 11 + i, k.endsWith('bias') ? 0 : undefined),
  );
  return {
    graph: g.build(),
    params,
    batch: {
      x: { dtype: 'float32', shape: [n, features], data: xs },
      targets: { dtype: 'float32', shape: [n, classes], data: oneHot(labels, classes) },
    },
  };
};

export interface BlockConfig {
  readonly batch: number;
  readonly seq: number;
  readonly vocab: number;
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly ffn: number;
}
export const BLOCK: BlockConfig = { batch: 16, seq: 8, vocab: 8, dim: 32, heads: 4, kvHeads: 2, ffn: 64 };

/**
 * One pre-norm transformer block (GQA attention + RMSNorm + SwiGLU) learning to output the previous token —
 * a task that needs attention across positions.
 */
export const transformerTask = (c: BlockConfig = BLOCK): TinyTask => {
  const headDim = c.dim / c.heads;
  const g = new GraphBuilder();
  const tokens = g.input('tokens', 'float32', ['batch', c.seq, c.vocab]); // one-hot (B, T, V)
  const targets = g.input('targets', 'float32', ['batch', c.seq, c.vocab]); // one-hot (B, T, V)
  const shapes: Record<string, number[]> = {
    'embed_tokens.weight': [c.vocab, c.dim],
    'embed_positions.weight': [c.seq, c.dim],
    'layers.0.input_layernorm.weight': [c.dim],
    'layers.0.self_attn.q_proj.weight': [c.dim, c.dim],
    'layers.0.self_attn.k_proj.weight': [c.kvHeads * headDim, c.dim],
    'layers.0.self_attn.v_proj.weight': [c.kvHeads * headDim, c.dim],
    'layers.0.self_attn.o_proj.weight': [c.dim, c.dim],
    'layers.0.post_attention_layernorm.weight': [c.dim],
    'layers.0.mlp.gate_proj.weight': [c.ffn, c.dim],
    'layers.0.mlp.up_proj.weight': [c.ffn, c.dim],
    'layers.0.mlp.down_proj.weight': [c.dim, c.ffn],
    'norm.weight': [c.dim],
    'lm_head.weight': [c.vocab, c.dim],
  };
  const w = (k: string) => g.tensorByName(k);
  for (const [k, s] of Object.entries(shapes)) g.input(k, 'float32', s);
  const mask = new Float32Array(c.seq * c.seq).map((_, i) => (i % c.seq <= Math.floor(i / c.seq) ? 0 : -1e9));
  const causal = g.constant(mask, 'float32', [c.seq, c.seq]);

  let h = add(matmul(tokens, w('embed_tokens.weight')), w('embed_positions.weight')); // (B, T, C)
  h = g.block('layers.0', () => {
    const x = rmsNorm(h, w('layers.0.input_layernorm.weight'), 1e-6);
    const q = splitHeads(linear(x, w('layers.0.self_attn.q_proj.weight')), c.heads, headDim); // (B, H, T, D)
    const k = splitHeads(linear(x, w('layers.0.self_attn.k_proj.weight')), c.kvHeads, headDim); // (B, Hkv, T, D)
    const v = splitHeads(linear(x, w('layers.0.self_attn.v_proj.weight')), c.kvHeads, headDim);
    const attn = mergeHeads(scaledDotProductAttention(q, k, v, causal)); // (B, T, C)
    const h1 = add(h, linear(attn, w('layers.0.self_attn.o_proj.weight')));
    const x2 = rmsNorm(h1, w('layers.0.post_attention_layernorm.weight'), 1e-6);
    return add(h1, swiGlu(x2, {
      gate: w('layers.0.mlp.gate_proj.weight'),
      up: w('layers.0.mlp.up_proj.weight'),
      down: w('layers.0.mlp.down_proj.weight'),
    }));
  });
  const logits = linear(rmsNorm(h, w('norm.weight'), 1e-6), w('lm_head.weight')); // (B, T, V)
  const flat = (t: typeof logits) => reshape(t, [-1, c.vocab]); // (B·T, V)
  g.output(softCrossEntropy(flat(logits), flat(targets)), 'loss');

  const rnd = seededRandom(3);
  const ids = Array.from({ length: c.batch * c.seq }, () => Math.floor(rnd() * c.vocab));
  const prev = ids.map((id, i) => (i % c.seq === 0 ? id : ids[i - 1]!));
  const params = Object.entries(shapes).map(([k, s], i) =>
    k.endsWith('norm.weight') ? initParam(k, s, 0, 100 + i, 1) : initParam(k, s, 1 / Math.sqrt(s[s.length - 1]!), 100 + i),
  );
  return {
    graph: g.build(),
    params,
    batch: {
      tokens: { dtype: 'float32', shape: [c.batch, c.seq, c.vocab], data: oneHot(ids, c.vocab) },
      targets: { dtype: 'float32', shape: [c.batch, c.seq, c.vocab], data: oneHot(prev, c.vocab) },
    },
  };
};
