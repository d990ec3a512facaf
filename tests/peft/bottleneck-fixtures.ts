// Shared by the bottleneck / AdapterFusion tests: a fixed batch, non-zero adapter values, a model graph's logits.
import type { Graph } from '../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../main/engine/onnx/runtime.ts';
import { createRng, normalArray } from '../../main/engine/random.ts';
import type { TrainableTensor } from '../../main/peft/method.ts';
import { packMicroBatch, withNormalizer, type Example } from '../../main/train/batch.ts';

/** Three rows of different lengths (so padding and the loss positions matter), one with an unlabelled prompt. */
export const EXAMPLES: Example[] = [
  { inputIds: [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13], labels: [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13] },
  { inputIds: [7530, 2442, 38302, 12099, 25, 6621, 5726, 11], labels: [-100, -100, -100, 12099, 25, 6621, 5726, 11] },
  { inputIds: [40, 1093, 311, 1373, 2835, 323], labels: [40, 1093, 311, 1373, 2835, 323] },
];

/** The training graph's feeds for EXAMPLES (one example per row) and the same batch for the Python reference. */
export const trainingBatch = (): { feeds: Record<string, HostTensor>; reference: Record<string, unknown> } => {
  const batch = packMicroBatch(EXAMPLES.map((e) => [e]));
  const feeds = withNormalizer(batch, batch.targets);
  const ids = feeds.input_ids!;
  const [B, T] = ids.shape as [number, number];
  const flat = Array.from(ids.data as BigInt64Array, Number);
  return {
    feeds,
    reference: {
      input_ids: Array.from({ length: B }, (_, b) => flat.slice(b * T, (b + 1) * T)),
      loss_positions: Array.from(feeds.loss_positions!.data as BigInt64Array, Number),
      loss_targets: Array.from(feeds.loss_targets!.data as BigInt64Array, Number),
      normalizer: batch.targets,
    },
  };
};

/**
 * Adapter values a trained adapter could have: every tensor random and non-zero (the up-projections too, unlike at
 * init), fusion queries and keys small enough that the softmax over adapters does not saturate (its gradient would vanish), values around I.
 */
export const nonZero = (params: readonly TrainableTensor[], seed: number): TrainableTensor[] => {
  const rng = createRng(seed);
  return params.map((p) => {
    const n = p.data.length;
    const std = p.role.endsWith('.bias') ? 0.2 : p.role.startsWith('adapter_fusion.') ? 0.1 : p.role === 'adapter.up.weight' ? 2 : 0.8;
    const data = normalArray(n, std, rng);
    if (p.role === 'adapter_fusion.value.weight') {
      const C = p.shape[0]!;
      for (let i = 0; i < n; i++) data[i] = (i % (C + 1) === 0 ? 1 : 0) + data[i]!;
    }
    return { ...p, data };
  });
};

export const logitsOf = async (graph: Graph, params: readonly TrainableTensor[], ids: readonly number[][]): Promise<Float32Array> => {
  const session = await Session.create(graph, { threads: 2 });
  const i64 = (rows: readonly number[][]): HostTensor => ({ dtype: 'int64', shape: [rows.length, rows[0]!.length], data: BigInt64Array.from(rows.flat(), BigInt) });
  const feeds: Record<string, HostTensor> = { input_ids: i64(ids), position_ids: i64(ids.map((row) => row.map((_, i) => i))) };
  for (const p of params) feeds[p.name] = { dtype: 'float32', shape: p.shape, data: p.data };
  const out = (await session.run(feeds)).logits!.data as Float32Array;
  await session.release();
  return out;
};

export const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
export const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
