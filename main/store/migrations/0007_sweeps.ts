// Sweeps over hyper-parameters and their trials. Each trial may own a run (its metrics and checkpoints); at most
// one trial of a sweep is the best (a partial unique index says so).
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 7,
  name: 'sweeps',
  up(db) {
    db.exec(`
      CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('fused', 'sequential')),
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
        error TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER
      );

      CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        sweep_id INTEGER NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL CHECK (ordinal >= 0),
        params TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued'
          CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'pruned')),
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        objective REAL,
        pruned_at_step INTEGER,
        is_best INTEGER NOT NULL DEFAULT 0 CHECK (is_best IN (0, 1)),
        created_at INTEGER NOT NULL,
        finished_at INTEGER,
        UNIQUE (sweep_id, ordinal)
      );
      CREATE UNIQUE INDEX trials_one_best_per_sweep ON trials (sweep_id) WHERE is_best = 1;
      CREATE INDEX trials_run ON trials (run_id);
    `);
  },
};
