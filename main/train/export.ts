// Export: where PEFT's weight math (peft/merge, peft/gguf-export) meets the model file formats (models/export).
//   exportMergedHf    base (HF folder or GGUF) + LoRA adapter → merged HF folder (safetensors, config, tokenizer)
//   exportMergedGguf  → merged llama.cpp GGUF (F16 / Q8_0 / F32) with tokenizer and chat template, + Ollama Modelfile
//   exportLoraGguf    → the adapter as a llama.cpp GGUF LoRA (for llama.cpp / Ollama ADAPTER on the original base)
// Tensors are read, merged and written one at a time; outputs land atomically and never overwrite an input.
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DType } from '../engine/ir/index.ts';
import { openExportBase, ggufOnlyTensors, baseLabel, type BaseTensor, type ExportBase } from '../models/export/base.ts';
import { ExportError } from '../models/export/errors.ts';
import { writeGgufLora } from '../models/export/gguf-lora.ts';
import { carriedMetadata, ggufModelMetadata, llama3RopeFactors, LLAMA_CPP_ARCHITECTURES, writeGgufModel, type GgufOutType } from '../models/export/gguf-model.ts';
import { ggufTokenizerMetadata } from '../models/export/gguf-vocab.ts';
import { writeHfFolder } from '../models/export/hf-folder.ts';
import { ollamaModelfile, type OllamaModelfile } from '../models/export/modelfile.ts';
import { guardDestination, writeFileAtomic } from '../models/export/atomic.ts';
import type { SafetensorsDtype } from '../models/export/safetensors-writer.ts';
import { hfToGgufName } from '../models/gguf/names.ts';
import { ggufValue } from '../models/gguf/writer.ts';
import { readTokenizerConfig, type TokenizerJson } from '../models/tokenizer/index.ts';
import { llamaCppLora } from '../peft/gguf-export.ts';
import { adapterChanges, loraAdapterWeights, mergedTensor, type LoraAdapterWeights } from '../peft/merge.ts';
import { loadAdapterFiles, type LoadedAdapter } from '../peft/peft-io.ts';

export interface MergeSource {
  /** An HF model folder or a .gguf file. */
  readonly base: string;
  /** A PEFT LoRA adapter folder, or one already loaded. */
  readonly adapter: string | LoadedAdapter;
  /** The adapter is a PiSSA/OLoRA one and `base` is the residual it was trained on. */
  readonly residualBase?: boolean;
}

const adapterOf = (s: MergeSource): LoraAdapterWeights =>
  loraAdapterWeights(typeof s.adapter === 'string' ? loadAdapterFiles(s.adapter) : s.adapter, { residualBase: s.residualBase });
const adapterPath = (s: MergeSource): string => (typeof s.adapter === 'string' ? s.adapter : s.adapter.dir);

interface MergedTensor extends BaseTensor {
  readonly changed: boolean;
}

interface MergedModel {
  readonly tensors: readonly MergedTensor[];
  /** The merge separated a tied LM head from the embedding. */
  readonly untied: boolean;
  readonly changed: readonly string[];
}

/** The base's tensors with the adapter merged in, each read (and merged) when it is written. */
const mergedModel = (base: ExportBase, adapter: LoraAdapterWeights): MergedModel => {
  const changes = adapterChanges(adapter);
  const byName = new Map(base.tensors.map((t) => [t.name, t]));
  const tensors: MergedTensor[] = base.tensors.map((t) => {
    const change = changes.get(t.name);
    if (!change) return { ...t, changed: false };
    return { name: t.name, shape: t.shape, dtype: t.dtype, changed: true, read: () => mergedTensor(change, t.name, t.read()).values };
  });
  const embed = byName.get('model.embed_tokens.weight');
  const tied = !byName.has('lm_head.weight') && embed !== undefined;
  const untied = tied && (changes.has('lm_head.weight') || changes.has('model.embed_tokens.weight'));
  if (untied) {
    // The adapted model's tied head reads the frozen embedding (plus its own LoRA): it becomes a tensor of its own.
    const change = changes.get('lm_head.weight');
    const read = change ? () => mergedTensor(change, 'lm_head.weight', embed.read()).values : embed.read;
    tensors.push({ name: 'lm_head.weight', shape: embed.shape, dtype: embed.dtype, changed: true, read });
  }
  for (const name of changes.keys()) {
    if (!byName.has(name) && !(untied && name === 'lm_head.weight')) {
      throw new ExportError(`${adapter.source}: the adapter changes '${name}', which ${base.path} does not have (an adapter for another model?)`, base.path, name);
    }
  }
  return { tensors, untied, changed: [...changes.keys()] };
};

export type HfExportDtype = 'float32' | 'float16' | 'bfloat16';
const ST_DTYPE: Readonly<Record<HfExportDtype, SafetensorsDtype>> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

export interface HfExportOptions extends MergeSource {
  /** The folder to create (it must not exist, or be empty). */
  readonly out: string;
  /** Default: the HF base's own float dtype; float16 for a GGUF base. */
  readonly dtype?: HfExportDtype;
  readonly maxShardBytes?: number;
}

export interface ExportResult {
  readonly path: string;
  /** Tensors the adapter changed. */
  readonly changed: readonly string[];
  readonly warnings: readonly string[];
}

const dominantDtype = (base: ExportBase): HfExportDtype => {
  if (base.kind === 'gguf') return 'float16';
  const counts = new Map<DType, number>();
  for (const t of base.tensors) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + t.shape.reduce((a, b) => a * b, 1));
  const top = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
  return top === 'bfloat16' || top === 'float16' ? top : 'float32';
};

/** A merged model as a Hugging Face folder that transformers loads as it loads the base. */
export const exportMergedHf = (o: HfExportOptions): ExportResult => {
  const adapter = adapterOf(o);
  const base = openExportBase(o.base);
  if (ggufOnlyTensors(base).length) {
    throw new ExportError(`${o.base}: llama3 rope scaling is stored as rope_freqs.weight, which config.json cannot express yet`, o.base, 'rope_freqs.weight');
  }
  const merged = mergedModel(base, adapter);
  const dtype = o.dtype ?? dominantDtype(base);
  const st = ST_DTYPE[dtype];
  const config: Record<string, unknown> = { ...base.hfConfig };
  config['dtype' in base.hfConfig ? 'dtype' : 'torch_dtype'] = dtype;
  if (merged.untied) config.tie_word_embeddings = false;
  writeHfFolder(o.out, {
    config,
    tensors: merged.tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      dtype: st,
      data: !t.changed && t.raw && t.dtype === dtype ? t.raw : t.read,
    })),
    files: base.files,
    copies: base.copies,
    inputs: [o.base, adapterPath(o)],
    ...(o.maxShardBytes ? { maxShardBytes: o.maxShardBytes } : {}),
  });
  return { path: o.out, changed: merged.changed, warnings: adapter.warnings };
};

export interface GgufExportOptions extends MergeSource {
  /** The .gguf file to write. */
  readonly out: string;
  readonly type?: GgufOutType;
  /** Also write an Ollama Modelfile next to it (FROM ./<file>). */
  readonly modelfile?: boolean;
  readonly name?: string;
  readonly overwrite?: boolean;
}

export interface GgufExportResult extends ExportResult {
  readonly modelfile?: OllamaModelfile & { readonly path: string };
}

const architectureOf = (base: ExportBase): string => {
  const arch = base.gguf?.architecture ?? LLAMA_CPP_ARCHITECTURES[base.config.architecture];
  if (!arch) throw new ExportError(`${base.path}: architecture ${base.config.architecture} has no llama.cpp counterpart here`, base.path);
  return arch;
};

/** Metadata of the exported GGUF: a GGUF base's own (tokenizer, chat template included), or built from the HF folder. */
const ggufMetadataOf = (base: ExportBase, name: string | undefined) => {
  if (base.gguf) {
    const m = carriedMetadata(base.gguf.metadata);
    if (name) m.set('general.name', ggufValue.string(name));
    return m;
  }
  const m = ggufModelMetadata(base.hfConfig, name ?? baseLabel(base));
  const tokenizerFile = join(base.path, 'tokenizer.json');
  let json: TokenizerJson;
  try {
    json = JSON.parse(readFileSync(tokenizerFile, 'utf8')) as TokenizerJson;
  } catch (err) {
    throw new ExportError(`${tokenizerFile}: cannot read the tokenizer (${(err as Error).message})`, tokenizerFile);
  }
  for (const [k, v] of ggufTokenizerMetadata(json, readTokenizerConfig(base.path), base.config.vocabSize, tokenizerFile)) m.set(k, v);
  return m;
};

/** A merged model as a llama.cpp GGUF, optionally with an Ollama Modelfile beside it. */
export const exportMergedGguf = (o: GgufExportOptions): GgufExportResult => {
  const adapter = adapterOf(o);
  const base = openExportBase(o.base);
  const inputs = [o.base, adapterPath(o)];
  const modelfilePath = join(dirname(o.out), 'Modelfile');
  if (o.modelfile) guardDestination(modelfilePath, inputs, { overwrite: o.overwrite });
  const merged = mergedModel(base, adapter);
  const metadata = ggufMetadataOf(base, o.name);
  const extra = base.gguf
    ? ggufOnlyTensors(base).map((n) => {
        const t = base.gguf!.requireTensor(n);
        return { name: n, dims: t.dims, type: t.type, data: () => base.gguf!.readTensorBytes(t) };
      })
    : [llama3RopeFactors(base.hfConfig)].filter((t) => t !== undefined);
  writeGgufModel(o.out, {
    architecture: architectureOf(base),
    heads: { numHeads: base.config.numHeads, numKvHeads: base.config.numKvHeads },
    metadata,
    tensors: merged.tensors,
    extra,
    type: o.type ?? 'F16',
    inputs,
    overwrite: o.overwrite,
  });
  if (!o.modelfile) return { path: o.out, changed: merged.changed, warnings: adapter.warnings };
  const tokens = metadata.get('tokenizer.ggml.tokens')?.value as readonly string[] | undefined;
  const stopIds = ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id'].map((k) => metadata.get(k)?.value).filter((v): v is number => typeof v === 'number');
  const template = metadata.get('tokenizer.chat_template')?.value;
  const mf = ollamaModelfile({
    from: `./${basename(o.out)}`,
    ...(typeof template === 'string' ? { chatTemplate: template } : {}),
    stopTokens: stopIds.map((id) => tokens?.[id] ?? '').filter((t) => t.length > 0),
  });
  writeFileAtomic(modelfilePath, (sink) => sink.write(Buffer.from(mf.text)));
  return { path: o.out, changed: merged.changed, warnings: [...adapter.warnings, ...mf.warnings], modelfile: { ...mf, path: modelfilePath } };
};

export interface LoraGgufOptions extends MergeSource {
  readonly out: string;
  readonly type?: 'F32' | 'F16';
  readonly overwrite?: boolean;
}

/** The adapter as a llama.cpp GGUF LoRA for `base` (its architecture, heads and tensor names). */
export const exportLoraGguf = (o: LoraGgufOptions): ExportResult & { readonly alpha: number; readonly tensors: readonly string[] } => {
  const adapter = adapterOf(o);
  const base = openExportBase(o.base);
  const lora = llamaCppLora(adapter);
  const baseTensors = new Set(base.gguf ? base.gguf.tensors.map((t) => t.name) : base.tensors.map((t) => hfToGgufName(t.name) ?? t.name));
  const tensors = writeGgufLora(o.out, {
    architecture: architectureOf(base),
    alpha: lora.alpha,
    heads: { numHeads: base.config.numHeads, numKvHeads: base.config.numKvHeads },
    modules: lora.modules,
    type: o.type ?? 'F32',
    baseTensors,
    name: basename(adapterPath(o)),
    inputs: [o.base, adapterPath(o)],
    overwrite: o.overwrite,
  });
  return { path: o.out, changed: [], warnings: adapter.warnings, alpha: lora.alpha, tensors };
};
