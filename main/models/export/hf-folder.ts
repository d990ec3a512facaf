// Writes a Hugging Face model folder: config.json, model.safetensors (or shards + model.safetensors.index.json when
// larger than the shard size, as save_pretrained does), tokenizer and generation files. Built under a temporary name
// and renamed into place; an existing non-empty folder or one of the inputs is never written over.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { guardDestination, writeFolderAtomic } from './atomic.ts';
import { ExportError } from './errors.ts';
import { tensorBytes, writeSafetensorsFile, type SafetensorsTensor } from './safetensors-writer.ts';

export interface HfFolderSpec {
  readonly config: Readonly<Record<string, unknown>>;
  readonly tensors: readonly SafetensorsTensor[];
  /** Files written from text (tokenizer.json from a GGUF, ...), by name in the folder. */
  readonly files?: Readonly<Record<string, string>>;
  /** Files copied as they are. */
  readonly copies?: readonly { readonly from: string; readonly to: string }[];
  /** Largest shard; default 5 GB (transformers' default max_shard_size). */
  readonly maxShardBytes?: number;
  /** Paths the folder must not overwrite or sit in (the base model, the adapter). */
  readonly inputs?: readonly string[];
}

const DEFAULT_SHARD = 5_000_000_000;

/** Splits tensors into shards in order, each at most `max` bytes (a bigger tensor gets a shard of its own). */
const shardsOf = (tensors: readonly SafetensorsTensor[], max: number): SafetensorsTensor[][] => {
  const shards: SafetensorsTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const n = tensorBytes(t);
    if (size > 0 && size + n > max) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(t);
    size += n;
  }
  return shards;
};

export interface HfFolderResult {
  readonly dir: string;
  readonly weightFiles: readonly string[];
}

export const writeHfFolder = (dir: string, spec: HfFolderSpec): HfFolderResult => {
  guardDestination(dir, spec.inputs ?? []);
  const files = { ...(spec.files ?? {}) };
  for (const name of Object.keys(files)) {
    if (name === 'config.json' || name.endsWith('.safetensors')) throw new ExportError(`${dir}: '${name}' is written by the exporter itself`, dir);
  }
  const shards = shardsOf(spec.tensors, spec.maxShardBytes ?? DEFAULT_SHARD);
  const names = shards.length === 1 ? ['model.safetensors'] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  writeFolderAtomic(dir, (tmp) => {
    for (const c of spec.copies ?? []) {
      mkdirSync(dirname(join(tmp, c.to)), { recursive: true });
      copyFileSync(c.from, join(tmp, c.to));
    }
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(dirname(join(tmp, name)), { recursive: true });
      writeFileSync(join(tmp, name), text);
    }
    writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(spec.config, null, 2)}\n`);
    shards.forEach((tensors, i) => writeSafetensorsFile(join(tmp, names[i]!), tensors));
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      shards.forEach((tensors, i) => tensors.forEach((t) => (weightMap[t.name] = names[i]!)));
      const totalSize = spec.tensors.reduce((a, t) => a + tensorBytes(t), 0);
      writeFileSync(join(tmp, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
    }
  });
  return { dir, weightFiles: names };
};
