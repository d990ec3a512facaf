// Metrics: one row per (run, name, step). The primary key IS the (run_id, name, step) index — the table is
// clustered on it (WITHOUT ROWID), so a chart's series is one contiguous range read, and a resumed run that
// logs a step again replaces the old value instead of duplicating it.
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 4,
  name: 'metrics',
  up(db) {
    db.exec(`
      CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        step INTEGER NOT NULL CHECK (step >= 0),
        value REAL,
        time INTEGER NOT NULL,
        PRIMARY KEY (run_id, name, step)
      ) WITHOUT ROWID;
    `);
  },
};
