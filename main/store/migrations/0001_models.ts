// Base models the user added to the library: a Hugging Face folder or a GGUF file on disk.
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 1,
  name: 'models',
  up(db) {
    db.exec(`
      CREATE TABLE models (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        format TEXT NOT NULL CHECK (format IN ('hf', 'gguf')),
        architecture TEXT NOT NULL,
        params INTEGER NOT NULL CHECK (params >= 0),
        metadata TEXT,
        added_at INTEGER NOT NULL
      );
    `);
  },
};
