// Adapters of the methods that train the model's own tensors (BITFIT, SELECTIVE): adapter_config.json (peft_type,
// the patterns, base_model_name_or_path) and adapter_model.safetensors with the trained tensors under their HF
// names, the layout of PEFT's folders so the same tools list and load them. Loading re-applies the method to the
// base graph and gives each trained tensor the saved values.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Graph } from '../engine/ir/index.ts';
import { writeSafetensors, type TensorToWrite } from '../engine/io/safetensors.ts';
import { applyBitfit, parseBitfitConfig, type BitfitConfig } from './bitfit.ts';
import { hfNameOfKey } from './base-tensors.ts';
import { PeftError } from './errors.ts';
import type { AdaptedGraph, TrainableTensor } from './method.ts';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, loadAdapterFiles } from './peft-io.ts';
import { applySelective, parseSelectiveConfig, type SelectiveConfig } from './selective.ts';

export type TensorAdapterConfig = BitfitConfig | SelectiveConfig;

export const saveTensorAdapter = (dir: string, config: TensorAdapterConfig, params: readonly TrainableTensor[]): void => {
  mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const p of params) tensors[hfNameOfKey(p.name)] = { shape: p.shape, data: p.data };
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  const tmp = join(dir, `${ADAPTER_CONFIG}.tmp-${process.pid}`);
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`);
  renameSync(tmp, join(dir, ADAPTER_CONFIG));
};

export interface LoadedTensorAdapter {
  readonly config: TensorAdapterConfig;
  readonly warnings: readonly string[];
  /** `graph` with the method applied; its params hold the saved values. */
  readonly adapted: AdaptedGraph;
}

/**
 * Loads a BITFIT / SELECTIVE adapter onto `graph` (the base model's training or logits graph). A tensor the file
 * lacks, one the model has no place for, or a shape mismatch (an adapter for another model) is an error naming it.
 */
export const loadTensorAdapter = (dir: string, graph: Graph): LoadedTensorAdapter => {
  const loaded = loadAdapterFiles(dir);
  const where = join(dir, ADAPTER_CONFIG);
  const type = loaded.config.peft_type;
  let config: TensorAdapterConfig;
  let warnings: readonly string[];
  let adapted: AdaptedGraph;
  if (type === 'BITFIT') {
    ({ config, warnings } = parseBitfitConfig(loaded.config, where));
    adapted = applyBitfit(graph, config);
  } else if (type === 'SELECTIVE') {
    ({ config, warnings } = parseSelectiveConfig(loaded.config, where));
    adapted = applySelective(graph, config);
  } else {
    throw new PeftError(`${where}: peft_type=${JSON.stringify(type)} is not an adapter of the model's own tensors (BITFIT or SELECTIVE)`);
  }
  const wanted = new Set(adapted.params.map((p) => hfNameOfKey(p.name)));
  for (const key of loaded.tensors.keys()) {
    if (!wanted.has(key)) throw new PeftError(`${dir}: tensor '${key}' has no place in this model under ${type}'s patterns (an adapter for another base model?)`);
  }
  const params = adapted.params.map((p) => {
    const key = hfNameOfKey(p.name);
    const t = loaded.tensors.get(key);
    if (!t) throw new PeftError(`${dir}: tensor '${key}' is missing from ${ADAPTER_WEIGHTS}`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new PeftError(`${dir}: tensor '${key}' has shape [${t.shape.join(', ')}], this model needs [${p.shape.join(', ')}]`);
    }
    return { ...p, data: Float32Array.from(t.data) };
  });
  return { config, warnings, adapted: { ...adapted, params } };
};
