// Training runs: what was trained (model, exact dataset version, method, config), how far it got, where.
// A run pins its model and dataset version: neither can be deleted while a run refers to it.
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 3,
  name: 'runs',
  up(db) {
    db.exec(`
      CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        method TEXT NOT NULL,
        model_id INTEGER NOT NULL REFERENCES models(id),
        dataset_version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
        environment TEXT,
        error TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER
      );
      CREATE INDEX runs_status ON runs (status);
      CREATE INDEX runs_model ON runs (model_id);
      CREATE INDEX runs_dataset_version ON runs (dataset_version_id);
    `);
  },
};
