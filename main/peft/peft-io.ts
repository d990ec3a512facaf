// Adapters on disk in HF PEFT's format: adapter_config.json + adapter_model.safetensors, keys without the
// adapter name (`base_model.model.<module>.lora_A.weight`), so PEFT loads what we save and we load what it saves.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, readTensorFloat32, writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { PeftError } from './errors.ts';
import type { TrainableTensor } from './method.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/**
 * In-memory key → saved key, as PEFT's get_peft_model_state_dict: the adapter name goes; a modules_to_save copy
 * is saved under the module's own key (`<module>.modules_to_save.<adapter>.weight` → `<module>.weight`); DoRA's
 * magnitude also loses its final `.weight` (`<module>.lora_magnitude_vector`).
 */
export const savedKey = (key: string, adapter: string): string => {
  const magnitude = `.lora_magnitude_vector.${adapter}.weight`;
  if (key.endsWith(magnitude)) return `${key.slice(0, -magnitude.length)}.lora_magnitude_vector`;
  return key.replace(`.modules_to_save.${adapter}.`, '.').replace(`.${adapter}.`, '.');
};

export const saveAdapter = (dir: string, config: Readonly<Record<string, unknown>>, params: readonly TrainableTensor[], adapter = 'default'): void => {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) tensors[savedKey(p.name, adapter)] = { shape: p.shape, data: p.data };
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

export interface LoadedAdapter {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly tensors: ReadonlyMap<string, { readonly shape: readonly number[]; readonly data: Float32Array }>;
}

export const loadAdapterFiles = (dir: string): LoadedAdapter => {
  const configFile = join(dir, ADAPTER_CONFIG);
  const weightsFile = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(configFile)) throw new PeftError(`${dir} is not a PEFT adapter folder: it has no ${ADAPTER_CONFIG}`);
  if (!existsSync(weightsFile)) throw new PeftError(`${dir}: ${ADAPTER_WEIGHTS} is missing`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new PeftError(`${configFile}: malformed JSON (${(err as Error).message})`);
  }
  const tensors = new Map(readSafetensorsHeader(weightsFile).map((e) => [e.name, { shape: e.shape, data: readTensorFloat32(e) }]));
  return { dir, config, tensors };
};

/**
 * Gives the adapted graph's trainable tensors the saved values. A tensor missing from the file, one the graph
 * does not have, or a shape mismatch (an adapter for another base model) is an error naming the tensor.
 */
export const assignAdapterWeights = (params: readonly TrainableTensor[], loaded: LoadedAdapter, adapter = 'default'): TrainableTensor[] => {
  const wanted = new Map(params.map((p) => [savedKey(p.name, adapter), p]));
  for (const key of loaded.tensors.keys()) {
    if (!wanted.has(key)) throw new PeftError(`${loaded.dir}: tensor '${key}' has no place in this model (an adapter for another base model or config?)`);
  }
  return params.map((p) => {
    const key = savedKey(p.name, adapter);
    const t = loaded.tensors.get(key);
    // PEFT 0.17 does not save bias='lora_only' biases: a base bias the file lacks keeps the checkpoint's value.
    if (!t && p.role === 'bias') return p;
    if (!t) throw new PeftError(`${loaded.dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new PeftError(`${loaded.dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model needs [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
};
