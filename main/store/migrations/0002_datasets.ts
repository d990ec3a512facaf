// Datasets, their rows and their versions. A version is a node in a tree (parent_id): a 'snapshot' lists every
// row of the version, a 'delta' only the rows its edit changed relative to its parent (row_id NULL = deleted).
// Row contents live once in dataset_rows and are never modified, so versions share them. See dataset-store.ts.
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 2,
  name: 'datasets',
  up(db) {
    db.exec(`
      CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        format TEXT NOT NULL,
        source_path TEXT,
        created_at INTEGER NOT NULL,
        head_version_id INTEGER REFERENCES dataset_versions(id),
        next_row_key INTEGER NOT NULL DEFAULT 1
      );

      CREATE TABLE dataset_versions (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        parent_id INTEGER REFERENCES dataset_versions(id),
        number INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('snapshot', 'delta')),
        chain_depth INTEGER NOT NULL CHECK (chain_depth >= 0),
        chain_entries INTEGER NOT NULL CHECK (chain_entries >= 0),
        row_count INTEGER NOT NULL CHECK (row_count >= 0),
        message TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (dataset_id, number),
        CHECK ((kind = 'snapshot') = (chain_depth = 0))
      );
      CREATE INDEX dataset_versions_parent ON dataset_versions (parent_id);

      CREATE TABLE dataset_rows (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        content TEXT NOT NULL
      );
      CREATE INDEX dataset_rows_dataset ON dataset_rows (dataset_id);

      CREATE TABLE dataset_version_entries (
        version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
        row_key INTEGER NOT NULL,
        row_id INTEGER REFERENCES dataset_rows(id),
        PRIMARY KEY (version_id, row_key)
      ) WITHOUT ROWID;
      CREATE INDEX dataset_version_entries_row ON dataset_version_entries (row_id);
    `);
  },
};
