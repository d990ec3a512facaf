// Chat sessions: the base model and several adapters side by side. A user message is shared by every pane; an
// assistant message comes from the base (adapter_name NULL) or from an adapter (adapter_name kept even if the
// adapter is later deleted, which only clears adapter_id).
import type { Migration } from '../migrate.ts';

export const migration: Migration = {
  id: 8,
  name: 'chat',
  up(db) {
    db.exec(`
      CREATE TABLE chat_sessions (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
        settings TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE chat_session_adapters (
        session_id INTEGER NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
        adapter_id INTEGER NOT NULL REFERENCES adapters(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        PRIMARY KEY (session_id, adapter_id)
      ) WITHOUT ROWID;
      CREATE INDEX chat_session_adapters_adapter ON chat_session_adapters (adapter_id);

      CREATE TABLE chat_messages (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content TEXT NOT NULL,
        adapter_id INTEGER REFERENCES adapters(id) ON DELETE SET NULL,
        adapter_name TEXT,
        stats TEXT,
        created_at INTEGER NOT NULL,
        CHECK (role = 'assistant' OR adapter_name IS NULL)
      );
      CREATE INDEX chat_messages_session ON chat_messages (session_id, id);
      CREATE INDEX chat_messages_adapter ON chat_messages (adapter_id);
    `);
  },
};
