import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig, type ModelConfig } from './config.ts';
import { ModelLoadError } from './errors.ts';
import { readSafetensorsFolder } from './safetensors.ts';
import { weightsFromSafetensors, type WeightStore } from './weights.ts';

export interface LoadedModel {
  readonly config: ModelConfig;
  readonly weights: WeightStore;
  /** The folder or file the model came from (for messages). */
  readonly source: string;
}

export const readJson = (file: string): Record<string, unknown> => {
  if (!existsSync(file)) throw new ModelLoadError(`${file} does not exist`, file);
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new ModelLoadError(`${file}: malformed JSON (${(err as Error).message})`, file);
  }
};

/** A Hugging Face model folder: config.json plus model.safetensors or its sharded index. */
export const openHfFolder = (dir: string): LoadedModel => {
  if (!existsSync(join(dir, 'config.json'))) {
    throw new ModelLoadError(`${dir} is not a Hugging Face model folder: it has no config.json`, dir);
  }
  const config = parseModelConfig(readJson(join(dir, 'config.json')), join(dir, 'config.json'));
  const weights = weightsFromSafetensors(readSafetensorsFolder(dir));
  return { config, weights, source: dir };
};
