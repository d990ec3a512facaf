// The adapter library behind the Adapters view: importing a PEFT adapter folder from disk (checked before it is
// recorded: its config parses for its method, its weights file reads, and where its base model can be found on this
// machine, every tensor fits that model) and copying one out as a PEFT folder.
import { copyFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadAdapterGraph } from '../generate/method-adapter.ts';
import { guardDestination, writeFolderAtomic } from '../models/export/atomic.ts';
import { resolveCached } from '../models/hub/download.ts';
import { openModel } from '../models/open-model.ts';
import { ADAPTER_CONFIG, loadAdapterFiles, type LoadedAdapter } from '../peft/peft-io.ts';
import { PeftError } from '../peft/errors.ts';
import { peftMethod } from '../peft/registry.ts';
import { SafetensorsError } from '../engine/io/safetensors.ts';
import type { JsonObject, Store } from '../store/index.ts';
import { buildTrainingGraph } from '../train/train-graph.ts';
import type { CopiedAdapter, ImportedAdapter } from './library-contract.ts';
import { absolutePath } from './library-models.ts';

/** The folder's PEFT files, read; an unreadable weights file is the user's adapter at fault (a PeftError). */
const readAdapterFolder = (dir: string): LoadedAdapter => {
  try {
    return loadAdapterFiles(dir);
  } catch (err) {
    throw err instanceof SafetensorsError ? new PeftError(err.message) : err; // it names the file
  }
};

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Where the base model an adapter names (base_model_name_or_path: a path or a Hub id) is on this machine: the path
 * itself, a model of the library by path or name, or a snapshot in the Hugging Face cache; undefined when none.
 */
export const locateBaseModel = async (store: Store, named: string): Promise<string | undefined> => {
  const path = absolutePath(named);
  if (existsSync(path)) return path;
  const inLibrary = store.models.list().find((m) => m.path === named || m.name === named);
  if (inLibrary && existsSync(inLibrary.path)) return inLibrary.path;
  if (!HUB_ID.test(named)) return undefined;
  const config = await resolveCached({ repo: named, filename: 'config.json' }).catch(() => null);
  return config === null ? undefined : resolve(config, '..');
};

export interface ImportAdapterOptions {
  /** The PEFT adapter folder (adapter_config.json + adapter_model.safetensors). */
  readonly path: string;
  /** The library's name for it; default the folder's name. */
  readonly name?: string;
  /** The base model to check it against, instead of the one its config names. */
  readonly model?: string;
}

/**
 * Checks a PEFT adapter folder and records it in the adapters table. A config its method rejects, a missing or
 * unreadable weights file, or a tensor that does not fit the base model is a PeftError naming the folder and the
 * tensor; nothing is recorded then.
 */
export const importAdapter = async (store: Store, o: ImportAdapterOptions): Promise<ImportedAdapter> => {
  const dir = absolutePath(o.path);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new PeftError(`${dir} is not a folder: an adapter is imported as its PEFT folder (adapter_config.json + adapter_model.safetensors)`);
  const loaded = readAdapterFolder(dir);
  const peftType = loaded.config['peft_type'];
  if (typeof peftType !== 'string') throw new PeftError(`${join(dir, ADAPTER_CONFIG)}: peft_type is missing (or not a string), so the method is unknown`);
  const { warnings } = peftMethod(peftType).parseConfig(loaded.config, join(dir, ADAPTER_CONFIG));

  const named = typeof loaded.config['base_model_name_or_path'] === 'string' ? (loaded.config['base_model_name_or_path'] as string) : undefined;
  const base = o.model ? absolutePath(o.model) : named ? await locateBaseModel(store, named) : undefined;
  const notes = [...warnings];
  if (base) {
    const { model } = openModel(base);
    // The method's own rewrite on the base model's graph, with the saved tensors assigned: what chat and evaluation
    // will do with it, so an adapter that imports also opens.
    try {
      notes.push(...loadAdapterGraph(model, dir, (m, g) => buildTrainingGraph(m, g)).warnings);
    } catch (err) {
      throw err instanceof PeftError ? new PeftError(`${err.message} (checked against the base model ${base})`) : err;
    }
  } else {
    notes.push(
      named
        ? `the base model '${named}' is not on this machine (not a path, not in the library, not in the Hugging Face cache): the adapter's tensors were not checked against it`
        : `${ADAPTER_CONFIG} names no base model (base_model_name_or_path): the adapter's tensors were not checked against one`,
    );
  }
  const inLibrary = base ? store.models.findByPath(base) : undefined;
  const adapter = store.adapters.add({
    name: o.name?.trim() || basename(dir),
    path: dir,
    peftType,
    config: loaded.config as JsonObject,
    baseModel: named ?? base ?? 'unknown',
    ...(inLibrary ? { baseModelId: inLibrary.id } : {}),
  });
  return { adapter, checkedAgainst: base ?? null, warnings: notes };
};

/** A copy of an adapter folder's files (its PEFT files and any beside them; sub-folders such as checkpoints stay). */
export const copyAdapterFolder = (o: { readonly adapter: string; readonly out: string }): CopiedAdapter => {
  const source = absolutePath(o.adapter);
  const out = absolutePath(o.out);
  readAdapterFolder(source); // a PEFT folder whose files read, before anything is written
  guardDestination(out, [source]);
  const files = readdirSync(source).filter((f) => statSync(join(source, f)).isFile() && !f.includes('.partial-'));
  writeFolderAtomic(out, (tmp) => {
    for (const f of files) copyFileSync(join(source, f), join(tmp, f));
  });
  return { dir: out, files: files.map((f) => join(out, f)) };
};
