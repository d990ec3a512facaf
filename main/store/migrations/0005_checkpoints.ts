// Checkpoints a run wrote (a folder on disk per step). Deleting a run deletes these rows; the folders are the
// caller's to remove (RunStore.delete returns their paths).
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 5,
  name: 'checkpoints',
  up(db) {
    db.exec(`
      CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        step INTEGER NOT NULL CHECK (step >= 0),
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL CHECK (bytes >= 0),
        created_at INTEGER NOT NULL,
        UNIQUE (run_id, step)
      );
    `);
  },
};
