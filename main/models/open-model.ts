import { existsSync, statSync } from 'node:fs';
import { ModelLoadError } from './errors.ts';
import { openGgufModel, type GgufModel } from './gguf/load.ts';
import { openGgufModelQ4 } from './gguf/quantized.ts';
import { openHfFolder, type LoadedModel } from './hf-folder.ts';
import { loadTokenizerFromFolder, readGenerationConfig, stopTokenIds, tokenizerFromGgufMetadata, type GenerationConfig, type Tokenizer } from './tokenizer/index.ts';

/** A model ready to chat with: its weights, tokenizer (with the chat template) and stop tokens. */
export interface OpenedModel {
  readonly model: LoadedModel;
  readonly tokenizer: Tokenizer;
  readonly generationConfig?: GenerationConfig;
  /** EOS ids from generation_config.json or the tokenizer (GGUF: eos and end-of-turn). */
  readonly stopTokenIds: readonly number[];
  readonly format: 'hf' | 'gguf';
}

export interface OpenModelOptions {
  /** GGUF only: keep Q4_0/Q4_1 linear weights in their 4-bit blocks (MatMulNBits) instead of float32. */
  readonly keepQuantized?: boolean;
}

/** Opens a Hugging Face folder or a .gguf file. */
export const openModel = (path: string, o: OpenModelOptions = {}): OpenedModel => {
  if (!existsSync(path)) throw new ModelLoadError(`${path} does not exist`, path);
  if (statSync(path).isDirectory()) {
    const model = openHfFolder(path);
    const tokenizer = loadTokenizerFromFolder(path);
    const generationConfig = readGenerationConfig(path);
    const stops = stopTokenIds(generationConfig, tokenizer);
    return { model, tokenizer, ...(generationConfig ? { generationConfig } : {}), stopTokenIds: stops.length ? stops : model.config.eosTokenIds, format: 'hf' };
  }
  if (!path.toLowerCase().endsWith('.gguf')) {
    throw new ModelLoadError(`${path} is neither a Hugging Face model folder nor a .gguf file`, path);
  }
  const model: GgufModel = o.keepQuantized ? openGgufModelQ4(path) : openGgufModel(path);
  const tokenizer = tokenizerFromGgufMetadata(model.file.metadata, { source: path });
  return { model, tokenizer, stopTokenIds: model.config.eosTokenIds, format: 'gguf' };
};
