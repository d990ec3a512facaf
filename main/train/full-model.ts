// The result of full fine-tuning: the whole model as a Hugging Face folder (config.json, safetensors, the base's
// tokenizer and generation files) that openModel and transformers open as they open the base. Tensors the run did
// not train (none, for FULL) are copied from the base; a tied embedding stays tied.
import type { DType } from '../engine/ir/index.ts';
import { openExportBase, ggufOnlyTensors, type ExportBase } from '../models/export/base.ts';
import { ExportError } from '../models/export/errors.ts';
import { writeHfFolder } from '../models/export/hf-folder.ts';
import type { SafetensorsDtype } from '../models/export/safetensors-writer.ts';
import { hfNameOfKey } from '../peft/base-tensors.ts';
import type { FullSaveDtype } from '../peft/full-finetune.ts';
import type { TrainableTensor } from '../peft/method.ts';

export interface SaveFullModelOptions {
  /** The base model the run started from: an HF folder or a .gguf file. */
  readonly base: string;
  /** The folder to create (it must not exist, or be empty). */
  readonly out: string;
  /** The trained tensors (FULL's, or any method's that trains the model's own tensors). */
  readonly params: readonly TrainableTensor[];
  readonly dtype?: FullSaveDtype;
  readonly maxShardBytes?: number;
}

export interface SavedFullModel {
  readonly path: string;
  readonly dtype: Exclude<FullSaveDtype, 'auto'>;
  /** HF names of the tensors written from the trained values. */
  readonly trained: readonly string[];
}

const ST_DTYPE: Readonly<Record<Exclude<FullSaveDtype, 'auto'>, SafetensorsDtype>> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** The float dtype most of the base's values are stored in; a GGUF base trained in float32 keeps float32. */
const baseDtype = (base: ExportBase): Exclude<FullSaveDtype, 'auto'> => {
  if (base.kind === 'gguf') return 'float32';
  const counts = new Map<DType, number>();
  for (const t of base.tensors) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + t.shape.reduce((a, b) => a * b, 1));
  const top = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  return top === 'bfloat16' || top === 'float16' ? top : 'float32';
};

export const saveFullModel = (o: SaveFullModelOptions): SavedFullModel => {
  const base = openExportBase(o.base);
  if (ggufOnlyTensors(base).length) {
    throw new ExportError(`${o.base}: llama3 rope scaling is stored as rope_freqs.weight, which config.json cannot express yet`, o.base, 'rope_freqs.weight');
  }
  const trained = new Map(o.params.map((p) => [hfNameOfKey(p.name), p]));
  const byName = new Map(base.tensors.map((t) => [t.name, t]));
  for (const [name, p] of trained) {
    const t = byName.get(name);
    if (!t) throw new ExportError(`${o.base} has no tensor '${name}' to replace with the trained one (trained on another model?)`, o.base, name);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new ExportError(`${o.base}: tensor '${name}' has shape [${t.shape.join(', ')}], the trained one [${p.shape.join(', ')}]`, o.base, name);
    }
  }
  const dtype = !o.dtype || o.dtype === 'auto' ? baseDtype(base) : o.dtype;
  const config: Record<string, unknown> = { ...base.hfConfig };
  config['dtype' in base.hfConfig ? 'dtype' : 'torch_dtype'] = dtype;
  writeHfFolder(o.out, {
    config,
    tensors: base.tensors.map((t) => {
      const p = trained.get(t.name);
      const data = p ? () => p.data : t.raw && t.dtype === dtype ? t.raw : t.read;
      return { name: t.name, shape: t.shape, dtype: ST_DTYPE[dtype], data };
    }),
    files: base.files,
    copies: base.copies,
    inputs: [o.base],
    ...(o.maxShardBytes ? { maxShardBytes: o.maxShardBytes } : {}),
  });
  return { path: o.out, dtype, trained: [...trained.keys()] };
};
