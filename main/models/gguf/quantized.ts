import { packQ4Codes } from '../../engine/ir/index.ts';
import type { WeightSource } from '../weights.ts';
import { readHfQ4Blocks, openGgufModel, type GgufModel } from './load.ts';
import { GgmlType } from './types.ts';

/**
 * A GGUF model whose Q4_0/Q4_1 linear weights stay in their 4-bit blocks (MatMulNBits reads them: ~0.16 of
 * float32's bytes); the rest (embeddings, norms, other types) is dequantized to float32.
 */
export const openGgufModelQ4 = (path: string): GgufModel => {
  const model = openGgufModel(path);
  const weights = new Map<string, WeightSource>(model.weights);
  for (const tensor of model.file.tensors) {
    if (tensor.type !== GgmlType.Q4_0 && tensor.type !== GgmlType.Q4_1) continue;
    if (tensor.dims.length !== 2) continue;
    const blocks = readHfQ4Blocks(model.file, tensor, model.hfConfig);
    if (!blocks.name.startsWith('model.layers.')) continue; // embeddings stay float, as QLoRA keeps them
    const [n, k] = blocks.shape as [number, number];
    // Q4_0: w = d·(q − 8). Q4_1: w = d·q + m = d·(q − (−m/d)); a block with d = 0 but m ≠ 0 has no such form.
    const zeroPoints = blocks.mins ? blocks.mins.map((m, b) => (blocks.scales[b] === 0 ? 0 : -m / blocks.scales[b]!)) : new Float32Array(blocks.scales.length).fill(8);
    if (blocks.mins?.some((m, b) => blocks.scales[b] === 0 && m !== 0)) continue;
    const prior = weights.get(blocks.name)!;
    weights.set(blocks.name, {
      ...prior,
      q4: { blockSize: blocks.blockSize, packed: packQ4Codes(blocks.codes, n, k), scales: blocks.scales, zeroPoints },
    });
  }
  return { ...model, weights };
};
