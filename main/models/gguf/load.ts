import { parseModelConfig } from '../config.ts';
import type { LoadedModel } from '../hf-folder.ts';
import type { WeightSource } from '../weights.ts';
import { ROPE_FREQS_TENSOR, ggufChatTemplate, ggufHfConfig, ggufRopeFreqs, ggufTokenizer, type GgufTokenizerMetadata, type HfStyleConfig } from './config.ts';
import { dequantizeTensor, q4Blocks, type Q4Blocks } from './dequant.ts';
import { ggufToHfName, hfShape, qkPermutationHeads, unpermuteQkRows } from './names.ts';
import { openGguf, type GgufFile, type GgufTensorInfo } from './reader.ts';

/** A GGUF tensor as Hugging Face would have it: HF name, HF (numpy-order) shape, HF row layout. */
export interface GgufHfTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const headsOf = (config: HfStyleConfig) => ({ numHeads: config.num_attention_heads, numKvHeads: config.num_key_value_heads });

/** Dequantizes one tensor into HF form; undefined for tensors without an HF counterpart (rope_freqs.weight). */
export const readHfTensor = (file: GgufFile, tensor: GgufTensorInfo, config: HfStyleConfig): GgufHfTensor | undefined => {
  const name = ggufToHfName(tensor.name);
  if (!name) return undefined;
  const shape = hfShape(tensor);
  let data = dequantizeTensor(file, tensor);
  const nHead = qkPermutationHeads(file.architecture ?? '', name, headsOf(config));
  if (nHead !== undefined) data = unpermuteQkRows(data, nHead, tensor.dims.length > 1 ? tensor.dims[0]! : 1);
  return { name, shape, data };
};

/**
 * The 4-bit blocks of a Q4_0/Q4_1 weight in HF row order (QLoRA keeps the frozen base quantized). Blocks run
 * along rows, so un-permuting q/k moves whole rows of codes and of per-row block scales alike.
 */
export const readHfQ4Blocks = (file: GgufFile, tensor: GgufTensorInfo, config: HfStyleConfig): Q4Blocks & { readonly name: string; readonly shape: readonly number[] } => {
  const name = ggufToHfName(tensor.name) ?? tensor.name;
  const blocks = q4Blocks(file, tensor);
  const shape = hfShape(tensor);
  const nHead = qkPermutationHeads(file.architecture ?? '', name, headsOf(config));
  if (nHead === undefined) return { ...blocks, name, shape };
  const cols = tensor.dims[0]!;
  const perRow = cols / blocks.blockSize;
  return {
    ...blocks,
    name,
    shape,
    codes: unpermuteQkRows(blocks.codes, nHead, cols),
    scales: unpermuteQkRows(blocks.scales, nHead, perRow),
    ...(blocks.mins ? { mins: unpermuteQkRows(blocks.mins, nHead, perRow) } : {}),
  };
};

export interface GgufOpenOptions {
  /** Takes a tensor as it is stored (e.g. 4-bit blocks) instead of dequantizing it; undefined = dequantize. */
  readonly keep?: (file: GgufFile, tensor: GgufTensorInfo, config: HfStyleConfig) => { readonly name: string; readonly source: WeightSource } | undefined;
}

export interface GgufModel extends LoadedModel {
  readonly file: GgufFile;
  /** config.json equivalent, before validation (what parseModelConfig saw). */
  readonly hfConfig: HfStyleConfig;
  readonly tokenizer: GgufTokenizerMetadata;
  readonly chatTemplate: string | undefined;
  /** Set when llama.cpp stored llama3 rope factors as a tensor (see config.ts). */
  readonly ropeFreqsTensor: string | undefined;
}

/**
 * Opens a GGUF model for the float32 path: every weight is dequantized in memory under its HF name.
 * (4 bytes per parameter: fine for small models; QLoRA keeps Q4 blocks through readHfQ4Blocks instead.)
 */
export const openGgufModel = (path: string, o: GgufOpenOptions = {}): GgufModel => {
  const file = openGguf(path);
  const hfConfig = ggufHfConfig(file);
  const parsed = parseModelConfig(hfConfig, path);
  // llama.cpp keeps llama3 rope scaling as per-frequency factors in a tensor, not in the metadata.
  const ropeTensor = file.tensor(ROPE_FREQS_TENSOR);
  const config = ropeTensor ? { ...parsed, ropeScaling: { type: 'freq_factors' as const, factors: dequantizeTensor(file, ropeTensor) } } : parsed;
  const weights = new Map<string, WeightSource>();
  for (const tensor of file.tensors) {
    const kept = o.keep?.(file, tensor, hfConfig);
    if (kept) {
      weights.set(kept.name, kept.source);
      continue;
    }
    const t = readHfTensor(file, tensor, hfConfig);
    if (t) weights.set(t.name, { dtype: 'float32', shape: t.shape, data: { kind: 'inline', data: t.data } });
  }
  return {
    config,
    weights,
    source: path,
    file,
    hfConfig,
    tokenizer: ggufTokenizer(file),
    chatTemplate: ggufChatTemplate(file),
    ropeFreqsTensor: ggufRopeFreqs(file),
  };
};
