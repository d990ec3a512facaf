import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SafetensorsError, readSafetensorsHeader, type SafetensorsEntry } from '../engine/io/safetensors.ts';
import { ModelLoadError } from './errors.ts';

export type { SafetensorsEntry } from '../engine/io/safetensors.ts';

const headerOf = (file: string): SafetensorsEntry[] => {
  try {
    return readSafetensorsHeader(file);
  } catch (err) {
    if (err instanceof SafetensorsError) throw new ModelLoadError(err.message, err.file);
    throw err;
  }
};

/** All tensors of a model folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
export const readSafetensorsFolder = (dir: string): Map<string, SafetensorsEntry> => {
  const index = join(dir, 'model.safetensors.index.json');
  let files: string[];
  let wanted: Map<string, string> | undefined;
  try {
    const parsed = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
    if (!parsed.weight_map) throw new ModelLoadError(`${index}: no weight_map`, index);
    wanted = new Map(Object.entries(parsed.weight_map));
    files = [...new Set(wanted.values())].map((f) => join(dirname(index), f));
  } catch (err) {
    if (err instanceof ModelLoadError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ModelLoadError(`${index}: ${(err as Error).message}`, index);
    files = [join(dir, 'model.safetensors')];
  }
  const out = new Map<string, SafetensorsEntry>();
  for (const f of files) {
    if (!existsSync(f)) {
      throw new ModelLoadError(wanted ? `${index} lists ${f}, which does not exist` : `no model.safetensors (or model.safetensors.index.json) in ${dir}`, f);
    }
    for (const e of headerOf(f)) out.set(e.name, e);
  }
  if (wanted) {
    for (const [name, f] of wanted) if (!out.has(name)) throw new ModelLoadError(`${index} maps '${name}' to ${f}, which lacks it`, index);
  }
  return out;
};
