// Dataset versions as JSON Lines files: the immutable file a run config points at (datasets.file), and exports.
// A version never changes, so its file is written once, under <dataDir>/datasets/<id>/v<number>.jsonl, and reused.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { StoreError, type Dataset, type DatasetVersion, type Store } from '../store/index.ts';
import { DatasetError } from '../train/dataset/index.ts';

/** In-memory stores (tests) get a scratch folder of their own, so two of them never share files. */
const scratchDirs = new WeakMap<Store, string>();

/** Where the store keeps its files: the database's folder (what app.info reports as dataDir). */
export const dataDirOf = (store: Store): string => {
  if (store.db.name !== ':memory:' && store.db.name !== '') return dirname(resolve(store.db.name));
  let dir = scratchDirs.get(store);
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'peft-studio-data-'));
    scratchDirs.set(store, dir);
  }
  return dir;
};

export interface VersionOf {
  readonly dataset: Dataset;
  readonly version: DatasetVersion;
}

/** The dataset and one of its versions (default: the head); a version of another dataset is bad input. */
export const versionOf = (store: Store, id: number, versionId?: number): VersionOf => {
  const dataset = store.datasets.get(id);
  const version = store.datasets.version(versionId ?? dataset.headVersionId);
  if (version.datasetId !== id) throw new StoreError('invalid-input', `version ${version.id} belongs to dataset ${version.datasetId}, not ${id}`);
  return { dataset, version };
};

/** The version's rows as JSON Lines text, one row a line in key order. */
export const versionJsonl = (store: Store, versionId: number): string => {
  const lines = store.datasets.rows(versionId).map((r) => JSON.stringify(r.row));
  return lines.length ? `${lines.join('\n')}\n` : '';
};

/** Writes a file whole or not at all (a reader never sees half of it). */
const writeAtomically = (file: string, text: string): void => {
  const partial = `${file}.${process.pid}.${Date.now().toString(36)}.partial`;
  writeFileSync(partial, text);
  renameSync(partial, file);
};

/**
 * The dataset's folder. Ids of deleted datasets can be reused by SQLite, so the folder records whose it is and a
 * folder left by another dataset of the same id is cleared before use.
 */
const datasetDir = (store: Store, dataset: Dataset): string => {
  const dir = join(dataDirOf(store), 'datasets', String(dataset.id));
  const owner = join(dir, 'dataset.json');
  const identity = JSON.stringify({ id: dataset.id, createdAt: dataset.createdAt });
  if (existsSync(dir) && (!existsSync(owner) || readFileSync(owner, 'utf8') !== identity)) rmSync(dir, { recursive: true, force: true });
  if (!existsSync(owner)) {
    mkdirSync(dir, { recursive: true });
    writeAtomically(owner, identity);
  }
  return dir;
};

/** Removes a deleted dataset's files. */
export const removeDatasetFiles = (store: Store, id: number): void => {
  rmSync(join(dataDirOf(store), 'datasets', String(id)), { recursive: true, force: true });
};

export interface VersionFile {
  readonly path: string;
  readonly format: string;
  readonly rows: number;
}

/** The version's JSON Lines file, written on first use. */
export const versionFile = (store: Store, id: number, versionId?: number): VersionFile => {
  const { dataset, version } = versionOf(store, id, versionId);
  const path = join(datasetDir(store, dataset), `v${version.number}.jsonl`);
  if (!existsSync(path)) writeAtomically(path, versionJsonl(store, version.id));
  return { path, format: dataset.format, rows: version.rowCount };
};

/**
 * The version a file written by versionFile holds, when `path` is one (<dataDir>/datasets/<id>/v<number>.jsonl of
 * a dataset that still has that version), so a run on it records that version instead of a copy of its rows.
 */
export const versionOfFile = (store: Store, path: string): DatasetVersion | undefined => {
  const match = /^(\d+)[/\\]v(\d+)\.jsonl$/.exec(relative(join(dataDirOf(store), 'datasets'), resolve(path)));
  if (!match) return undefined;
  try {
    return store.datasets.versions(Number(match[1])).find((v) => v.number === Number(match[2]));
  } catch (err) {
    if (err instanceof StoreError) return undefined;
    throw err;
  }
};

/** A name to save a version under: the dataset's name without its extension, and the version number. */
export const exportFileName = (dataset: Dataset, version: DatasetVersion): string => {
  const stem = dataset.name.replace(/\.[A-Za-z0-9]{1,8}$/, '').replace(/[^\w.-]+/g, '_') || 'dataset';
  return `${stem}-v${version.number}.jsonl`;
};

export interface ExportOutcome {
  readonly rows: number;
  readonly bytes: number;
  readonly path?: string;
  readonly content?: string;
  readonly fileName: string;
}

/** Writes the version as JSON Lines to `path` (a folder: a file named after the dataset in it), or returns it. */
export const exportVersion = (store: Store, o: { id: number; versionId?: number; path?: string }): ExportOutcome => {
  const { dataset, version } = versionOf(store, o.id, o.versionId);
  const fileName = exportFileName(dataset, version);
  const text = versionJsonl(store, version.id);
  const bytes = Buffer.byteLength(text);
  if (o.path === undefined) return { rows: version.rowCount, bytes, content: text, fileName };
  let target = resolve(o.path);
  if (existsSync(target) && statSync(target).isDirectory()) target = join(target, fileName);
  const parent = dirname(target);
  if (!existsSync(parent) || !statSync(parent).isDirectory()) {
    throw new DatasetError(`cannot export to ${target}: the folder ${parent} does not exist`);
  }
  try {
    writeAtomically(target, text);
  } catch (err) {
    throw new DatasetError(`cannot export to ${target}: ${(err as Error).message}`);
  }
  return { rows: version.rowCount, bytes, path: target, fileName };
};
