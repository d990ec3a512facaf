// Datasets: imported rows, edited into versions that can be undone and redone. How versions are stored (a delta
// chain with snapshots over shared, immutable row contents) is explained in dataset-history.ts.
import { checkText, found, page, type Clock } from './common.ts';
import { DatasetHistory, type VersionKind, type VersionRow } from './dataset-history.ts';
import { StoreError } from './errors.ts';
import { fromJson, toJson, type JsonValue } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';

/** Edits touching at most this many existing rows check them by index lookups, not by reading the whole head. */
const KEYS_CHECKED_ONE_BY_ONE = 256;

export interface Dataset {
  readonly id: number;
  readonly name: string;
  /** 'alpaca', 'sharegpt', 'messages', 'prompt-completion', 'text', ...: the training layer owns the list. */
  readonly format: string;
  readonly sourcePath: string | null;
  readonly createdAt: number;
  /** The version the user sees and edits; undo and redo move it. */
  readonly headVersionId: number;
  /** Rows in the head version. */
  readonly rowCount: number;
}

export interface DatasetVersion {
  readonly id: number;
  readonly datasetId: number;
  /** The version this one was edited from; null for the first. */
  readonly parentId: number | null;
  /** 1, 2, 3, ... within the dataset, in creation order. */
  readonly number: number;
  readonly kind: VersionKind;
  readonly rowCount: number;
  readonly message: string;
  readonly createdAt: number;
}

export interface DatasetRow {
  /** Stable identity of the row across versions (an edit keeps it); never reused within a dataset. */
  readonly key: number;
  readonly row: JsonValue;
}

export interface NewDataset {
  readonly name: string;
  readonly format: string;
  readonly sourcePath?: string;
  readonly rows: Iterable<JsonValue>;
  /** The first version's message (default 'import'). */
  readonly message?: string;
}

/** One edit = one new version. Keys refer to rows of the head version. */
export interface DatasetEdit {
  /** New rows, appended (they get fresh keys, in this order). */
  readonly insert?: readonly JsonValue[];
  readonly update?: readonly { readonly key: number; readonly row: JsonValue }[];
  readonly delete?: readonly number[];
}

export interface UndoState {
  readonly canUndo: boolean;
  readonly canRedo: boolean;
}

interface DatasetRowSql {
  id: number;
  name: string;
  format: string;
  source_path: string | null;
  created_at: number;
  head_version_id: number;
  next_row_key: number;
  row_count: number;
}

const toVersion = (v: VersionRow): DatasetVersion => ({
  id: v.id,
  datasetId: v.dataset_id,
  parentId: v.parent_id,
  number: v.number,
  kind: v.kind,
  rowCount: v.row_count,
  message: v.message,
  createdAt: v.created_at,
});

const toDataset = (d: DatasetRowSql): Dataset => ({
  id: d.id,
  name: d.name,
  format: d.format,
  sourcePath: d.source_path,
  createdAt: d.created_at,
  headVersionId: d.head_version_id,
  rowCount: d.row_count,
});

export class DatasetStore {
  private readonly history: DatasetHistory;
  private readonly datasetById;
  private readonly versionById;
  private readonly newestChild;
  private readonly insertVersion;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {
    this.history = new DatasetHistory(db);
    this.datasetById = db.prepare<[number], DatasetRowSql>(
      `SELECT d.*, v.row_count FROM datasets d JOIN dataset_versions v ON v.id = d.head_version_id WHERE d.id = ?`,
    );
    this.versionById = db.prepare<[number], VersionRow>('SELECT * FROM dataset_versions WHERE id = ?');
    this.newestChild = db.prepare<[number], VersionRow>('SELECT * FROM dataset_versions WHERE parent_id = ? ORDER BY id DESC LIMIT 1');
    this.insertVersion = db.prepare<[number, number | null, number, VersionKind, number, number, number, string, number], VersionRow>(
      `INSERT INTO dataset_versions
         (dataset_id, parent_id, number, kind, chain_depth, chain_entries, row_count, message, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    );
  }

  /** Imports a dataset: its rows become version 1 (a snapshot), the head. */
  create(input: NewDataset): { dataset: Dataset; version: DatasetVersion } {
    checkText(input.name, 'dataset name');
    checkText(input.format, 'dataset format');
    const message = input.message ?? 'import';
    return this.db.transaction(() => {
      const { id } = found(
        this.db
          .prepare<[string, string, string | null, number], { id: number }>(
            'INSERT INTO datasets (name, format, source_path, created_at) VALUES (?, ?, ?, ?) RETURNING id',
          )
          .get(input.name, input.format, input.sourcePath ?? null, this.now()),
        'the inserted dataset',
      );
      const entries = new Map<number, number>();
      for (const row of input.rows) {
        const key = entries.size + 1;
        entries.set(key, this.history.addContent(id, toJson(row, `row ${key - 1}`)));
      }
      const version = this.writeVersion(id, undefined, entries, entries.size, entries.size + 1, message);
      return { dataset: this.get(id), version: toVersion(version) };
    })();
  }

  get(id: number): Dataset {
    return toDataset(found(this.datasetById.get(id), `dataset ${id}`));
  }

  /** Newest first. */
  list(): Dataset[] {
    return this.db
      .prepare<[], DatasetRowSql>(
        `SELECT d.*, v.row_count FROM datasets d JOIN dataset_versions v ON v.id = d.head_version_id
          ORDER BY d.created_at DESC, d.id DESC`,
      )
      .all()
      .map(toDataset);
  }

  rename(id: number, name: string): Dataset {
    this.get(id);
    this.db.prepare('UPDATE datasets SET name = ? WHERE id = ?').run(checkText(name, 'dataset name'), id);
    return this.get(id);
  }

  /** Deletes a dataset with all its versions and rows. StoreError 'in-use' while a run used one of its versions. */
  delete(id: number): void {
    this.get(id);
    const runs = this.db
      .prepare<[number], { id: number }>(
        `SELECT r.id FROM runs r JOIN dataset_versions v ON v.id = r.dataset_version_id WHERE v.dataset_id = ? ORDER BY r.id LIMIT 6`,
      )
      .all(id);
    if (runs.length > 0) {
      const ids = runs.slice(0, 5).map((r) => r.id).join(', ');
      throw new StoreError('in-use', `dataset ${id} was used by runs ${ids}${runs.length > 5 ? ', ...' : ''}: delete those runs first`);
    }
    this.db.prepare('DELETE FROM datasets WHERE id = ?').run(id);
  }

  version(versionId: number): DatasetVersion {
    return toVersion(found(this.versionById.get(versionId), `dataset version ${versionId}`));
  }

  /** Every version of the dataset, oldest first (a tree: follow parentId). */
  versions(datasetId: number): DatasetVersion[] {
    this.get(datasetId);
    return this.db
      .prepare<[number], VersionRow>('SELECT * FROM dataset_versions WHERE dataset_id = ? ORDER BY number')
      .all(datasetId)
      .map(toVersion);
  }

  /** The rows of a version (default: all), in key order. */
  rows(versionId: number, options: { limit?: number; offset?: number } = {}): DatasetRow[] {
    this.version(versionId);
    const [limit, offset] = page(options);
    return this.history
      .rows(versionId, limit, offset)
      .map((r) => ({ key: r.key, row: fromJson(r.content, `row ${r.key} of dataset version ${versionId}`) }));
  }

  /** One row of a version; undefined when the key is not (or no longer) there. */
  row(versionId: number, key: number): JsonValue | undefined {
    this.version(versionId);
    const content = this.history.row(versionId, key);
    return content === undefined ? undefined : fromJson(content, `row ${key} of dataset version ${versionId}`);
  }

  /**
   * Applies an edit to the head version as a new version, which becomes the head (any redo branch stays stored
   * and reachable through checkout). StoreError 'invalid-input' for an empty edit or keys not in the head.
   */
  commit(datasetId: number, edit: DatasetEdit, message: string): DatasetVersion {
    checkText(message, 'version message');
    const commit = this.db.transaction(() => {
      const dataset = found(
        this.db
          .prepare<[number], { head_version_id: number; next_row_key: number }>(
            'SELECT head_version_id, next_row_key FROM datasets WHERE id = ?',
          )
          .get(datasetId),
        `dataset ${datasetId}`,
      );
      const head = found(this.versionById.get(dataset.head_version_id), `dataset version ${dataset.head_version_id}`);
      // A few keys are checked one by one (index lookups); many at once against the materialized head.
      let current: Map<number, number> | undefined;
      const touched = (edit.update?.length ?? 0) + (edit.delete?.length ?? 0);
      if (touched > KEYS_CHECKED_ONE_BY_ONE) current = this.history.entries(head.id);
      const has = current ? (key: number) => current.has(key) : (key: number) => this.history.has(head.id, key);
      const changes = this.validateEdit(has, edit);
      let nextKey = dataset.next_row_key;
      const entries = new Map<number, number | null>();
      for (const [key, row] of changes.updates) entries.set(key, this.history.addContent(datasetId, toJson(row, `row ${key}`)));
      for (const key of changes.deletes) entries.set(key, null);
      (edit.insert ?? []).forEach((row, i) => entries.set(nextKey++, this.history.addContent(datasetId, toJson(row, `inserted row ${i}`))));
      const rowCount = head.row_count + (edit.insert?.length ?? 0) - changes.deletes.size;
      if (!DatasetHistory.storeAsSnapshot(head, entries.size, rowCount)) {
        return toVersion(this.writeVersion(datasetId, head, entries, rowCount, nextKey, message, 'delta'));
      }
      const snapshot = current ?? this.history.entries(head.id);
      for (const [key, rowId] of entries) {
        if (rowId === null) snapshot.delete(key);
        else snapshot.set(key, rowId);
      }
      return toVersion(this.writeVersion(datasetId, head, snapshot, rowCount, nextKey, message));
    });
    return commit.immediate();
  }

  /** Moves the head back to its parent version. StoreError 'nothing-to-undo' at the first version. */
  undo(datasetId: number): DatasetVersion {
    return this.db.transaction(() => {
      const head = this.version(this.get(datasetId).headVersionId);
      if (head.parentId === null) throw new StoreError('nothing-to-undo', `dataset ${datasetId} is at its first version`);
      return this.moveHead(datasetId, head.parentId);
    }).immediate();
  }

  /**
   * Moves the head to its newest child: the edit last undone (a newer edit made after an undo is a newer child,
   * so redo follows it). StoreError 'nothing-to-redo' when the head has no child.
   */
  redo(datasetId: number): DatasetVersion {
    return this.db.transaction(() => {
      const child = this.newestChild.get(this.get(datasetId).headVersionId);
      if (child === undefined) throw new StoreError('nothing-to-redo', `dataset ${datasetId} has no undone edit to redo`);
      return this.moveHead(datasetId, child.id);
    }).immediate();
  }

  /** Makes any version of the dataset the head (undo and redo then continue from there). */
  checkout(datasetId: number, versionId: number): DatasetVersion {
    const version = this.version(versionId);
    if (version.datasetId !== datasetId) throw new StoreError('invalid-input', `version ${versionId} belongs to dataset ${version.datasetId}, not ${datasetId}`);
    return this.moveHead(datasetId, versionId);
  }

  undoState(datasetId: number): UndoState {
    const head = this.version(this.get(datasetId).headVersionId);
    return { canUndo: head.parentId !== null, canRedo: this.newestChild.get(head.id) !== undefined };
  }

  private moveHead(datasetId: number, versionId: number): DatasetVersion {
    this.db.prepare('UPDATE datasets SET head_version_id = ? WHERE id = ?').run(versionId, datasetId);
    return this.version(versionId);
  }

  private validateEdit(has: (key: number) => boolean, edit: DatasetEdit): { updates: Map<number, JsonValue>; deletes: Set<number> } {
    const updates = new Map<number, JsonValue>();
    const deletes = new Set<number>();
    const known = (key: number, what: string): number => {
      if (!Number.isSafeInteger(key) || !has(key)) throw new StoreError('invalid-input', `cannot ${what} row ${key}: it is not in the head version`);
      if (updates.has(key) || deletes.has(key)) throw new StoreError('invalid-input', `row ${key} appears twice in one edit`);
      return key;
    };
    for (const u of edit.update ?? []) updates.set(known(u.key, 'update'), u.row);
    for (const key of edit.delete ?? []) deletes.add(known(key, 'delete'));
    if (updates.size + deletes.size + (edit.insert?.length ?? 0) === 0) throw new StoreError('invalid-input', 'an edit must change something');
    return { updates, deletes };
  }

  private writeVersion(
    datasetId: number,
    parent: VersionRow | undefined,
    entries: ReadonlyMap<number, number | null>,
    rowCount: number,
    nextRowKey: number,
    message: string,
    kind: VersionKind = 'snapshot',
  ): VersionRow {
    const number = parent === undefined ? 1 : this.nextNumber(datasetId);
    const delta = kind === 'delta' && parent !== undefined;
    const depth = delta ? parent.chain_depth + 1 : 0;
    const chainEntries = delta ? parent.chain_entries + entries.size : 0;
    const version = found(
      this.insertVersion.get(datasetId, parent?.id ?? null, number, kind, depth, chainEntries, rowCount, message, this.now()),
      'the inserted version',
    );
    this.history.writeEntries(version.id, entries);
    this.db.prepare('UPDATE datasets SET head_version_id = ?, next_row_key = ? WHERE id = ?').run(version.id, nextRowKey, datasetId);
    return version;
  }

  private nextNumber(datasetId: number): number {
    return (this.db.prepare<[number], { n: number }>('SELECT MAX(number) + 1 AS n FROM dataset_versions WHERE dataset_id = ?').get(datasetId)?.n ?? 1);
  }
}
