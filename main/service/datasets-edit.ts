// Editing a stored dataset: every edit is a new version (the store's), undo/redo/checkout move the head.
import { StoreError, type DatasetVersion, type JsonValue, type Store } from '../store/index.ts';
import { DatasetError } from '../train/dataset/index.ts';
import type { DatasetChange, DatasetDetails } from './dataset-contract.ts';
import { removeDatasetFiles } from './datasets-files.ts';
import { cachedIndex, indexRows, type VersionRows } from './datasets-index.ts';

export const datasetDetails = (store: Store, id: number): DatasetDetails => {
  const dataset = store.datasets.get(id);
  return {
    dataset,
    versions: store.datasets.versions(id),
    head: store.datasets.version(dataset.headVersionId),
    undo: store.datasets.undoState(id),
  };
};

export interface EditRequest {
  readonly id: number;
  readonly insert?: readonly unknown[];
  readonly update?: readonly { readonly key: number; readonly row: unknown }[];
  readonly delete?: readonly number[];
  readonly message?: string;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What an edit did, in words, for the versions list. */
const describeEdit = (edit: EditRequest): string => {
  const parts: string[] = [];
  if (edit.update?.length) parts.push(edit.update.length === 1 ? `edit row ${edit.update[0]!.key}` : `edit ${plural(edit.update.length, 'row')}`);
  if (edit.insert?.length) parts.push(`add ${plural(edit.insert.length, 'row')}`);
  if (edit.delete?.length) parts.push(`delete ${plural(edit.delete.length, 'row')}`);
  return parts.join(', ') || 'edit';
};

export const editDataset = (store: Store, edit: EditRequest): DatasetChange => {
  const parent = cachedIndex(store, store.datasets.get(edit.id).headVersionId);
  const version = store.datasets.commit(
    edit.id,
    {
      ...(edit.insert ? { insert: edit.insert as JsonValue[] } : {}),
      ...(edit.update ? { update: edit.update as { key: number; row: JsonValue }[] } : {}),
      ...(edit.delete ? { delete: edit.delete } : {}),
    },
    edit.message ?? describeEdit(edit),
  );
  if (parent) indexRows(store, edit.id, version.id, derivedRows(store, parent, version, edit));
  return { ...datasetDetails(store, edit.id), version };
};

/**
 * The rows of an edit's version from its parent's: updates in place, deletions left out, insertions (which the
 * store gives the next keys, so they come last in key order) read back from the store.
 */
const derivedRows = (store: Store, parent: VersionRows, version: DatasetVersion, edit: EditRequest): VersionRows => {
  const updates = new Map((edit.update ?? []).map((u) => [u.key, u.row as JsonValue]));
  const deletes = new Set(edit.delete ?? []);
  const keys: number[] = [];
  const rows: JsonValue[] = [];
  parent.keys.forEach((key, i) => {
    if (deletes.has(key)) return;
    keys.push(key);
    rows.push(updates.has(key) ? updates.get(key)! : parent.rows[i]!);
  });
  const inserted = edit.insert?.length ? store.datasets.rows(version.id, { offset: keys.length }) : [];
  for (const r of inserted) {
    keys.push(r.key);
    rows.push(r.row);
  }
  return { keys, rows };
};

/** Undo, redo or checkout; at either end of the history a clear bad-input error instead of the store's code. */
export const moveHead = (store: Store, id: number, how: { readonly to: 'undo' | 'redo' } | { readonly to: 'checkout'; readonly versionId: number }): DatasetChange => {
  let version;
  try {
    if (how.to === 'checkout') version = store.datasets.checkout(id, how.versionId);
    else version = how.to === 'undo' ? store.datasets.undo(id) : store.datasets.redo(id);
  } catch (err) {
    if (err instanceof StoreError && (err.code === 'nothing-to-undo' || err.code === 'nothing-to-redo')) throw new DatasetError(err.message);
    throw err;
  }
  return { ...datasetDetails(store, id), version };
};

export const deleteDataset = (store: Store, id: number): { deleted: number } => {
  store.datasets.delete(id);
  removeDatasetFiles(store, id);
  return { deleted: id };
};
