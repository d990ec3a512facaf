// Adapters: trained by a run, or imported (run_id NULL). An adapter outlives the run that made it (its files are
// the user's): deleting the run only clears run_id. base_model is the name the adapter was trained against
// (adapter_config.json's base_model_name_or_path); base_model_id links it to the library when known.
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 6,
  name: 'adapters',
  up(db) {
    db.exec(`
      CREATE TABLE adapters (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        peft_type TEXT NOT NULL,
        config TEXT NOT NULL,
        base_model TEXT NOT NULL,
        base_model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX adapters_run ON adapters (run_id);
      CREATE INDEX adapters_base_model ON adapters (base_model_id);
    `);
  },
};
