// How a dataset version is stored and read back (internal to dataset-store.ts).
//
// Choice: a DELTA CHAIN WITH SNAPSHOTS (keyframes), over immutable, shared row contents.
// - Every logical row has a key (an integer, allocated per dataset, never reused, even across branches).
// - A version maps keys to row contents (dataset_rows ids). A 'snapshot' version stores that whole map; a 'delta'
//   version stores only the keys its edit touched (a new content id, or NULL for a deleted row) over its parent.
// - Row contents are written once and never modified; an edited row is a new dataset_rows row. So versions share
//   contents, and a version, once written, never changes — a run can pin it forever.
// - A delta chain is bounded: an edit is stored as a snapshot when its chain would grow past MAX_DELTA_DEPTH
//   versions, or when the entries along the chain would exceed max(MIN_DELTA_ENTRY_BUDGET, half the rows) (a
//   snapshot is then about as cheap as the chain it replaces).
// Why not a full snapshot per version: a one-cell edit of a 100k-row dataset would copy 100k entries (MBs) per
// keystroke-sized undo step. Why not an unbounded delta chain: reads would slow down with every edit.
// Reading a version: its snapshot's entries in key order (one range scan), merged with the few overrides of the
// deltas above it (nearest wins), stopping once the requested page is complete; contents are then fetched by id.
// Versions form a tree (undo, then a new edit, starts a branch), so every past version stays readable.
import { StoreError } from './errors.ts';
import type { SqliteDatabase } from './migrate.ts';

/**
 * A delta chain never holds more versions than this on top of its snapshot. Reads cost little per level (one
 * PK lookup per chain version); the entry budget below is what bounds their work.
 */
export const MAX_DELTA_DEPTH = 128;
/** Entries a chain may accumulate before a snapshot, at least (small datasets), or half the rows (large ones). */
export const MIN_DELTA_ENTRY_BUDGET = 1024;

export type VersionKind = 'snapshot' | 'delta';

export interface VersionRow {
  id: number;
  dataset_id: number;
  parent_id: number | null;
  number: number;
  kind: VersionKind;
  chain_depth: number;
  chain_entries: number;
  row_count: number;
  message: string;
  created_at: number;
}

/** The chain from a version back to its snapshot (dist 0 = the version itself). */
const CHAIN = `
  WITH RECURSIVE chain (id, dist, kind, parent_id) AS (
    SELECT id, 0, kind, parent_id FROM dataset_versions WHERE id = :version
    UNION ALL
    SELECT v.id, chain.dist + 1, v.kind, v.parent_id
      FROM dataset_versions v JOIN chain ON v.id = chain.parent_id
     WHERE chain.kind = 'delta'
  )`;

export interface StoredRow {
  readonly key: number;
  readonly content: string;
}

/** A version as its snapshot plus what the deltas on top of it change (nearest delta wins). */
interface Layered {
  readonly snapshotId: number;
  /** key → content id, or null for a row the deltas deleted. */
  readonly overrides: ReadonlyMap<number, number | null>;
  /** Keys the deltas added that the snapshot does not have, ascending. */
  readonly added: readonly number[];
}

/**
 * SQL access to versions and their entries. Reads merge, in key order, the snapshot's entries (one range scan
 * of the entries' primary key) with the deltas' overrides (few: the chain's entry budget bounds them), and stop
 * as soon as the requested page is complete.
 */
export class DatasetHistory {
  private readonly chainStatement;
  private readonly versionEntries;
  private readonly versionEntriesPage;
  private readonly snapshotHas;
  private readonly contents;
  private readonly rowStatement;
  private readonly insertEntry;
  private readonly insertContent;

  constructor(db: SqliteDatabase) {
    this.chainStatement = db.prepare<{ version: number }, { id: number; kind: VersionKind }>(`${CHAIN} SELECT id, kind FROM chain ORDER BY dist`);
    this.versionEntries = db.prepare<[number], { row_key: number; row_id: number | null }>(
      'SELECT row_key, row_id FROM dataset_version_entries WHERE version_id = ? ORDER BY row_key',
    );
    this.versionEntriesPage = db.prepare<[number, number, number], { row_key: number; row_id: number }>(
      'SELECT row_key, row_id FROM dataset_version_entries WHERE version_id = ? ORDER BY row_key LIMIT ? OFFSET ?',
    );
    this.snapshotHas = db.prepare<[number, number], { found: 1 }>(
      'SELECT 1 AS found FROM dataset_version_entries WHERE version_id = ? AND row_key = ?',
    );
    this.contents = db.prepare<[string], { id: number; content: string }>(
      'SELECT r.id AS id, r.content AS content FROM json_each(?) j JOIN dataset_rows r ON r.id = j.value',
    );
    this.rowStatement = db.prepare<{ version: number; key: number }, { row_id: number | null; content: string | null }>(
      `${CHAIN}
       SELECT e.row_id AS row_id, r.content AS content
         FROM dataset_version_entries e JOIN chain ON e.version_id = chain.id
         LEFT JOIN dataset_rows r ON r.id = e.row_id
        WHERE e.row_key = :key
        ORDER BY chain.dist LIMIT 1`,
    );
    this.insertEntry = db.prepare<[number, number, number | null]>(
      'INSERT INTO dataset_version_entries (version_id, row_key, row_id) VALUES (?, ?, ?)',
    );
    this.insertContent = db.prepare<[number, string]>('INSERT INTO dataset_rows (dataset_id, content) VALUES (?, ?)');
  }

  /** key → content id of every row of the version, in key order. */
  entries(versionId: number): Map<number, number> {
    const map = new Map<number, number>();
    this.walk(versionId, 0, Infinity, (key, rowId) => map.set(key, rowId));
    return map;
  }

  /** The version's rows in key order, `limit` (-1: all) from `offset`. */
  rows(versionId: number, limit: number, offset: number): StoredRow[] {
    const page: [number, number][] = [];
    this.walk(versionId, offset, limit < 0 ? Infinity : limit, (key, rowId) => page.push([key, rowId]));
    if (page.length === 0) return [];
    const byId = new Map<number, string>();
    for (const r of this.contents.iterate(JSON.stringify(page.map(([, id]) => id)))) byId.set(r.id, r.content);
    return page.map(([key, id]) => ({ key, content: byId.get(id) ?? '' }));
  }

  /** One row's content at a version; undefined when the key is absent or deleted there. */
  row(versionId: number, key: number): string | undefined {
    return this.rowStatement.get({ version: versionId, key })?.content ?? undefined;
  }

  /** Whether the version has a row with this key (one index lookup per chain version at most). */
  has(versionId: number, key: number): boolean {
    const entry = this.rowStatement.get({ version: versionId, key });
    return entry !== undefined && entry.row_id !== null;
  }

  /** Calls `visit` for the version's rows number offset .. offset + count - 1 (key order), then stops. */
  private walk(versionId: number, offset: number, count: number, visit: (key: number, rowId: number) => void): void {
    if (count <= 0) return;
    const { snapshotId, overrides, added } = this.layers(versionId);
    if (overrides.size === 0) {
      // A snapshot: SQLite skips to the page itself.
      for (const e of this.versionEntriesPage.iterate(snapshotId, Number.isFinite(count) ? count : -1, offset)) visit(e.row_key, e.row_id);
      return;
    }
    let position = 0;
    let next = 0; // index into `added`
    const emit = (key: number, rowId: number): boolean => {
      if (position++ >= offset) visit(key, rowId);
      return position < offset + count;
    };
    const iterator = this.versionEntries.iterate(snapshotId);
    try {
      for (const e of iterator) {
        while (next < added.length && (added[next] ?? 0) < e.row_key) {
          const key = added[next++] ?? 0;
          if (!emit(key, overrides.get(key) ?? 0)) return;
        }
        const rowId = overrides.has(e.row_key) ? overrides.get(e.row_key) : e.row_id;
        if (rowId !== null && rowId !== undefined && !emit(e.row_key, rowId)) return;
      }
      while (next < added.length) {
        const key = added[next++] ?? 0;
        if (!emit(key, overrides.get(key) ?? 0)) return;
      }
    } finally {
      iterator.return?.();
    }
  }

  private layers(versionId: number): Layered {
    const chain = this.chainStatement.all({ version: versionId });
    const snapshot = chain[chain.length - 1];
    if (snapshot?.kind !== 'snapshot') throw new StoreError('integrity', `dataset version ${versionId} has no snapshot below it`);
    const overrides = new Map<number, number | null>();
    for (const delta of chain.slice(0, -1)) {
      for (const e of this.versionEntries.iterate(delta.id)) if (!overrides.has(e.row_key)) overrides.set(e.row_key, e.row_id);
    }
    const added = [...overrides]
      .filter(([key, rowId]) => rowId !== null && this.snapshotHas.get(snapshot.id, key) === undefined)
      .map(([key]) => key)
      .sort((a, b) => a - b);
    return { snapshotId: snapshot.id, overrides, added };
  }

  /** Writes a row content (JSON text) and returns its id. */
  addContent(datasetId: number, json: string): number {
    return Number(this.insertContent.run(datasetId, json).lastInsertRowid);
  }

  writeEntries(versionId: number, entries: Iterable<[key: number, rowId: number | null]>): void {
    for (const [key, rowId] of entries) this.insertEntry.run(versionId, key, rowId);
  }

  /**
   * Whether an edit with `changed` entries, on top of `parent` (undefined: the first version), giving `rowCount`
   * rows, is stored as a snapshot rather than a delta.
   */
  static storeAsSnapshot(parent: VersionRow | undefined, changed: number, rowCount: number): boolean {
    if (parent === undefined) return true;
    if (parent.chain_depth + 1 > MAX_DELTA_DEPTH) return true;
    return parent.chain_entries + changed > Math.max(MIN_DELTA_ENTRY_BUDGET, rowCount / 2);
  }
}
