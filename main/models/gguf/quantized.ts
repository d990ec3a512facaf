import { packQ4Codes, packQ4ZeroPoints } from '../../engine/ir/index.ts';
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
      // Q4_0: w = d·(q − 8) (MatMulNBits' default zero point). Q4_1: w = d·(q − 0) + m, the min as a block offset.
      const [n, k] = blocks.shape as [number, number];
      const zeroPoints = blocks.mins ? packQ4ZeroPoints(new Uint8Array(blocks.scales.length), n, k / blocks.blockSize) : undefined;
      return {
        name: blocks.name,
        source: {
          dtype: 'float32',
          shape: blocks.shape,
          data: { kind: 'inline', data: new Float32Array(0) },
          q4: {
            blockSize: blocks.blockSize,
            packed: packQ4Codes(blocks.codes, n, k),
            scales: blocks.scales,
            ...(zeroPoints ? { zeroPoints } : {}),
            ...(blocks.mins ? { mins: blocks.mins } : {}),
          },
        },
      };
    },
  });
