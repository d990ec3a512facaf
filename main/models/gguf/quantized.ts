import { packQ4Codes } from '../../engine/ir/index.ts';
import { readHfQ4Blocks, openGgufModel, type GgufModel } from './load.ts';
import { GgmlType } from './types.ts';

/**
 * A GGUF model whose Q4_0/Q4_1 linear weights stay in their 4-bit blocks (MatMulNBits reads them: ~0.16 of
 * float32's bytes); the rest (embeddings, as QLoRA keeps them, norms, other types) is dequantized to float32.
 */
export const openGgufModelQ4 = (path: string): GgufModel =>
  openGgufModel(path, {
    keep: (file, tensor, config) => {
      if ((tensor.type !== GgmlType.Q4_0 && tensor.type !== GgmlType.Q4_1) || tensor.dims.length !== 2) return undefined;
      const blocks = readHfQ4Blocks(file, tensor, config);
      if (!blocks.name.startsWith('model.layers.')) return undefined;
      // Q4_0: w = d·(q − 8). Q4_1: w = d·q + m = d·(q − (−m/d)); a block with d = 0 but m ≠ 0 has no such form.
      if (blocks.mins?.some((m, b) => blocks.scales[b] === 0 && m !== 0)) return undefined;
      const zeroPoints = blocks.mins
        ? blocks.mins.map((m, b) => (blocks.scales[b] === 0 ? 0 : -m / blocks.scales[b]!))
        : new Float32Array(blocks.scales.length).fill(8);
      const [n, k] = blocks.shape as [number, number];
      return {
        name: blocks.name,
        source: {
          dtype: 'float32',
          shape: blocks.shape,
          data: { kind: 'inline', data: new Float32Array(0) },
          q4: { blockSize: blocks.blockSize, packed: packQ4Codes(blocks.codes, n, k), scales: blocks.scales, zeroPoints },
        },
      };
    },
  });
