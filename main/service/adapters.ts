// Adapters into new artefacts: several LoRA adapters combined into one (PEFT's add_weighted_adapter, peft/weighted.ts),
// or one merged into its base and exported (train/export.ts): a merged HF folder, a merged GGUF (optionally with an
// Ollama Modelfile), or a llama.cpp GGUF LoRA. Every adapter is checked against the model first, so a mismatch is
// named by folder and tensor before anything is written; outputs never overwrite what the user has.
import { basename, join, resolve } from 'node:path';
import { writeFolderAtomic, guardDestination } from '../models/export/atomic.ts';
import { ExportError } from '../models/export/errors.ts';
import type { GgufOutType } from '../models/export/gguf-model.ts';
import type { WeightStore } from '../models/weights.ts';
import { openModel } from '../models/open-model.ts';
import { PeftError } from '../peft/errors.ts';
import { loraAdapterWeights, type LoraAdapterWeights } from '../peft/merge.ts';
import { ADAPTER_WEIGHTS, loadAdapterFiles, saveAdapter } from '../peft/peft-io.ts';
import { addWeightedAdapter, combinedAdapterParams, type CombinationType } from '../peft/weighted.ts';
import type { Adapter, Store } from '../store/index.ts';
import { exportLoraGguf, exportMergedGguf, exportMergedHf } from '../train/export.ts';

export type AdapterEvent = { readonly type: 'stage'; readonly message: string };

const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Every LoRA module and replaced tensor of `adapter` against the model's own tensors: a module the model lacks or a
 * shape that differs (an adapter for another model) is a PeftError naming the adapter's tensor and the model.
 */
export const checkAdapterFitsModel = (adapter: LoraAdapterWeights, weights: WeightStore, modelPath: string): void => {
  const tied = !weights.has('lm_head.weight');
  const baseOf = (module: string) => weights.get(`${module}.weight`) ?? (tied && module === 'lm_head' ? weights.get('model.embed_tokens.weight') : undefined);
  for (const m of adapter.modules) {
    const key = `base_model.model.${m.module}.lora_A.weight`;
    const base = baseOf(m.module);
    if (!base) throw new PeftError(`${adapter.source}: tensor '${key}' adapts '${m.module}', which ${modelPath} does not have (an adapter for another model?)`);
    const [out, inFeatures] = base.shape;
    if (base.shape.length !== 2 || inFeatures !== m.inFeatures) {
      throw new PeftError(`${adapter.source}: tensor '${key}' has shape ${shapeText([m.r, m.inFeatures])}, ${modelPath}'s '${m.module}.weight' ${shapeText(base.shape)} needs [${m.r}, ${inFeatures}] (an adapter for another model?)`);
    }
    if (out !== m.outFeatures) {
      const keyB = `base_model.model.${m.module}.lora_B.weight`;
      throw new PeftError(`${adapter.source}: tensor '${keyB}' has shape ${shapeText([m.outFeatures, m.r])}, ${modelPath}'s '${m.module}.weight' ${shapeText(base.shape)} needs [${out}, ${m.r}] (an adapter for another model?)`);
    }
  }
  for (const t of adapter.replaced) {
    const base = weights.get(t.name);
    if (!base) throw new PeftError(`${adapter.source}: tensor '${t.name}' replaces a tensor ${modelPath} does not have`);
    if (base.shape.length !== t.shape.length || base.shape.some((d, i) => d !== t.shape[i])) {
      throw new PeftError(`${adapter.source}: tensor '${t.name}' has shape ${shapeText(t.shape)}, ${modelPath} has ${shapeText(base.shape)}`);
    }
  }
};

/** The store's model record for `path`, when the library has it. */
const libraryModel = (store: Store, path: string) => store.models.list().find((m) => resolve(m.path) === resolve(path));

export interface MergeAdaptersOptions {
  /** The base model the adapters were trained on (checked against, and named in the new adapter's config). */
  readonly model: string;
  readonly adapters: readonly string[];
  /** One per adapter; default equal weights 1/n (an average). */
  readonly weights?: readonly number[];
  /** Default 'cat': exactly Σ wᵢ·ΔWᵢ at rank Σ rᵢ. */
  readonly combination?: CombinationType;
  readonly svdRank?: number;
  readonly density?: number;
  /** The adapter folder to create (it must not exist, or be empty). */
  readonly out: string;
  /** Registers the new adapter in the adapters table. */
  readonly store?: Store;
  readonly onEvent?: (e: AdapterEvent) => void;
}

export interface MergeAdaptersOutcome {
  readonly dir: string;
  readonly rank: number;
  readonly modules: number;
  readonly combination: CombinationType;
  readonly weights: readonly number[];
  readonly warnings: readonly string[];
  readonly registered?: Adapter;
}

/** Several LoRA adapters of one model combined into one PEFT adapter folder. */
export const mergeAdapters = (o: MergeAdaptersOptions): MergeAdaptersOutcome => {
  const say = (message: string) => o.onEvent?.({ type: 'stage', message });
  if (o.adapters.length === 0) throw new PeftError('merge needs at least one adapter');
  const weights = o.weights ?? o.adapters.map(() => 1 / o.adapters.length);
  if (weights.length !== o.adapters.length) throw new PeftError(`${o.adapters.length} adapters but ${weights.length} weights`);
  guardDestination(o.out, [o.model, ...o.adapters]);
  say(`opening ${o.model}`);
  const { model } = openModel(o.model);
  const loaded = o.adapters.map((dir) => {
    say(`reading ${dir}`);
    const a = loraAdapterWeights(loadAdapterFiles(dir));
    checkAdapterFitsModel(a, model.weights, o.model);
    return a;
  });
  const combination = o.combination ?? 'cat';
  say(`combining ${loaded.length} adapter(s) (${combination}, weights ${weights.join(', ')})`);
  const combined = addWeightedAdapter(loaded, weights, {
    combinationType: combination,
    ...(o.svdRank !== undefined ? { svdRank: o.svdRank } : {}),
    ...(o.density !== undefined ? { density: o.density } : {}),
  });
  const config = { ...combined.config, base_model_name_or_path: o.model };
  writeFolderAtomic(o.out, (tmp) => saveAdapter(tmp, config, combinedAdapterParams(combined)));
  say(`wrote ${join(o.out, ADAPTER_WEIGHTS)}`);
  const inLibrary = o.store ? libraryModel(o.store, o.model) : undefined;
  const registered = o.store?.adapters.add({
    name: basename(resolve(o.out)),
    path: resolve(o.out),
    peftType: 'LORA',
    config: config as never,
    baseModel: o.model,
    ...(inLibrary ? { baseModelId: inLibrary.id } : {}),
  });
  return {
    dir: o.out,
    rank: Number(combined.config['r']),
    modules: combined.modules.length,
    combination: o.adapters.length === 1 ? 'linear' : combination,
    weights,
    warnings: loaded.flatMap((a) => a.warnings),
    ...(registered ? { registered } : {}),
  };
};

export const EXPORT_FORMATS = ['hf', 'gguf', 'gguf-lora', 'ollama'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export const GGUF_TYPES = ['f16', 'q8_0', 'f32'] as const;
export type GgufType = (typeof GGUF_TYPES)[number];

export interface ExportAdapterOptions {
  /** The base model (HF folder or .gguf) the adapter was trained on. */
  readonly model: string;
  readonly adapter: string;
  readonly format: ExportFormat;
  /** Merged GGUF: f16 (default), q8_0 or f32; GGUF LoRA: f32 (default) or f16. */
  readonly ggufType?: GgufType;
  /** hf: the folder to create; gguf, gguf-lora: the file; ollama: a folder for model.gguf and Modelfile. */
  readonly out: string;
  /** general.name of a merged GGUF. */
  readonly name?: string;
  readonly onEvent?: (e: AdapterEvent) => void;
}

export interface ExportAdapterOutcome {
  readonly format: ExportFormat;
  /** The files and folders written. */
  readonly paths: readonly string[];
  /** Base tensors the merge changed (none for a GGUF LoRA). */
  readonly changed: number;
  readonly warnings: readonly string[];
}

const GGUF_OUT: Readonly<Record<GgufType, GgufOutType>> = { f16: 'F16', q8_0: 'Q8_0', f32: 'F32' };

/** One LoRA adapter merged into its base (hf, gguf, ollama) or converted for llama.cpp (gguf-lora). */
export const exportAdapter = (o: ExportAdapterOptions): ExportAdapterOutcome => {
  const say = (message: string) => o.onEvent?.({ type: 'stage', message });
  if (!EXPORT_FORMATS.includes(o.format)) throw new ExportError(`export format '${String(o.format)}' is not one of ${EXPORT_FORMATS.join(', ')}`);
  if (o.format === 'gguf-lora' && o.ggufType === 'q8_0') throw new ExportError('a GGUF LoRA is written as f32 or f16, not q8_0', o.out);
  if (o.format === 'hf' && o.ggufType) throw new ExportError(`--gguf-type is for the GGUF formats, not '${o.format}'`, o.out);
  say(`checking ${o.adapter} against ${o.model}`);
  const loaded = loadAdapterFiles(o.adapter);
  checkAdapterFitsModel(loraAdapterWeights(loaded), openModel(o.model).model.weights, o.model);
  const source = { base: o.model, adapter: loaded };
  const type = GGUF_OUT[o.ggufType ?? (o.format === 'gguf-lora' ? 'f32' : 'f16')];
  say(`writing ${o.format} to ${o.out}`);
  switch (o.format) {
    case 'hf': {
      const r = exportMergedHf({ ...source, out: o.out });
      return { format: o.format, paths: [r.path], changed: r.changed.length, warnings: r.warnings };
    }
    case 'gguf':
    case 'ollama': {
      const file = o.format === 'ollama' ? join(o.out, 'model.gguf') : o.out;
      if (o.format === 'ollama') guardDestination(o.out, [o.model, o.adapter]);
      const r = exportMergedGguf({ ...source, out: file, type, modelfile: o.format === 'ollama', ...(o.name ? { name: o.name } : {}) });
      return { format: o.format, paths: [r.path, ...(r.modelfile ? [r.modelfile.path] : [])], changed: r.changed.length, warnings: r.warnings };
    }
    case 'gguf-lora': {
      const r = exportLoraGguf({ ...source, out: o.out, type: type as 'F32' | 'F16' });
      return { format: o.format, paths: [r.path], changed: 0, warnings: r.warnings };
    }
  }
};
