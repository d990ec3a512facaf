// Chat sessions: one base model and several adapters side by side. The user's messages are shared by all panes;
// each assistant message says which pane answered (the base, or an adapter by id and name).
import { checkText, found, type Clock } from './common.ts';
import { StoreError, translateConstraint } from './errors.ts';
import { fromJson, fromJsonOrNull, objectToJson, type JsonObject } from './json.ts';
import type { SqliteDatabase } from './migrate.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatSession {
  readonly id: number;
  readonly title: string;
  readonly modelId: number | null;
  /** Sampling and template settings (temperature, top_p, max tokens, system prompt, ...). */
  readonly settings: JsonObject;
  /** The adapters shown beside the base, in pane order. */
  readonly adapterIds: readonly number[];
  readonly createdAt: number;
  /** When its last message was added. */
  readonly updatedAt: number;
}

export interface ChatMessage {
  readonly id: number;
  readonly sessionId: number;
  readonly role: ChatRole;
  readonly content: string;
  /** For an assistant message: the adapter that answered (null for the base, or once the adapter is deleted). */
  readonly adapterId: number | null;
  /** The answering adapter's name when it answered; null for the base model and non-assistant messages. */
  readonly adapterName: string | null;
  /** Generation figures (tokens, tok/s, time to first token, ...). */
  readonly stats: JsonObject | null;
  readonly createdAt: number;
}

export interface NewChatMessage {
  readonly sessionId: number;
  readonly role: ChatRole;
  readonly content: string;
  /** Assistant messages from an adapter pane; omit for the base model. */
  readonly adapterId?: number;
  readonly stats?: JsonObject;
}

interface SessionRow {
  id: number;
  title: string;
  model_id: number | null;
  settings: string;
  created_at: number;
  updated_at: number;
}

interface MessageRow {
  id: number;
  session_id: number;
  role: ChatRole;
  content: string;
  adapter_id: number | null;
  adapter_name: string | null;
  stats: string | null;
  created_at: number;
}

const toMessage = (r: MessageRow): ChatMessage => ({
  id: r.id,
  sessionId: r.session_id,
  role: r.role,
  content: r.content,
  adapterId: r.adapter_id,
  adapterName: r.adapter_name,
  stats: fromJsonOrNull<JsonObject>(r.stats, `stats of chat message ${r.id}`),
  createdAt: r.created_at,
});

export class ChatStore {
  constructor(
    private readonly db: SqliteDatabase,
    private readonly now: Clock = Date.now,
  ) {}

  createSession(input: { title: string; modelId?: number; settings?: JsonObject; adapterIds?: readonly number[] }): ChatSession {
    const settings = objectToJson(input.settings ?? {}, 'chat settings');
    return this.db.transaction(() => {
      const t = this.now();
      const row = translateConstraint(
        () =>
          this.db
            .prepare<[string, number | null, string, number, number], { id: number }>(
              'INSERT INTO chat_sessions (title, model_id, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id',
            )
            .get(checkText(input.title, 'chat title'), input.modelId ?? null, settings, t, t),
        { foreignKey: `model ${input.modelId} does not exist` },
      );
      const id = found(row, 'the inserted chat session').id;
      this.writeAdapters(id, input.adapterIds ?? []);
      return this.session(id);
    })();
  }

  session(id: number): ChatSession {
    const r = found(this.db.prepare<[number], SessionRow>('SELECT * FROM chat_sessions WHERE id = ?').get(id), `chat session ${id}`);
    const adapterIds = this.db
      .prepare<[number], { adapter_id: number }>('SELECT adapter_id FROM chat_session_adapters WHERE session_id = ? ORDER BY position')
      .all(id)
      .map((a) => a.adapter_id);
    return {
      id: r.id,
      title: r.title,
      modelId: r.model_id,
      settings: fromJson<JsonObject>(r.settings, `settings of chat session ${r.id}`),
      adapterIds,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  /** Most recently active first. */
  sessions(): ChatSession[] {
    return this.db
      .prepare<[], { id: number }>('SELECT id FROM chat_sessions ORDER BY updated_at DESC, id DESC')
      .all()
      .map((r) => this.session(r.id));
  }

  updateSession(id: number, patch: { title?: string; settings?: JsonObject; adapterIds?: readonly number[] }): ChatSession {
    return this.db.transaction(() => {
      const s = this.session(id);
      this.db
        .prepare('UPDATE chat_sessions SET title = ?, settings = ? WHERE id = ?')
        .run(patch.title === undefined ? s.title : checkText(patch.title, 'chat title'), objectToJson(patch.settings ?? s.settings, 'chat settings'), id);
      if (patch.adapterIds !== undefined) {
        this.db.prepare('DELETE FROM chat_session_adapters WHERE session_id = ?').run(id);
        this.writeAdapters(id, patch.adapterIds);
      }
      return this.session(id);
    })();
  }

  /** Deletes a session and its messages. */
  deleteSession(id: number): void {
    this.session(id);
    this.db.prepare('DELETE FROM chat_sessions WHERE id = ?').run(id);
  }

  addMessage(input: NewChatMessage): ChatMessage {
    if (input.adapterId !== undefined && input.role !== 'assistant') {
      throw new StoreError('invalid-input', `a ${input.role} message does not come from an adapter`);
    }
    return this.db.transaction(() => {
      this.session(input.sessionId);
      const adapterName =
        input.adapterId === undefined
          ? null
          : found(this.db.prepare<[number], { name: string }>('SELECT name FROM adapters WHERE id = ?').get(input.adapterId), `adapter ${input.adapterId}`).name;
      const t = this.now();
      const row = this.db
        .prepare<[number, string, string, number | null, string | null, string | null, number], MessageRow>(
          `INSERT INTO chat_messages (session_id, role, content, adapter_id, adapter_name, stats, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
        )
        .get(input.sessionId, input.role, input.content, input.adapterId ?? null, adapterName, input.stats === undefined ? null : objectToJson(input.stats, 'message stats'), t);
      this.db.prepare('UPDATE chat_sessions SET updated_at = ? WHERE id = ?').run(t, input.sessionId);
      return toMessage(found(row, 'the inserted chat message'));
    })();
  }

  /** A session's messages in the order they were added. */
  messages(sessionId: number): ChatMessage[] {
    this.session(sessionId);
    return this.db.prepare<[number], MessageRow>('SELECT * FROM chat_messages WHERE session_id = ? ORDER BY id').all(sessionId).map(toMessage);
  }

  private writeAdapters(sessionId: number, adapterIds: readonly number[]): void {
    if (new Set(adapterIds).size !== adapterIds.length) throw new StoreError('invalid-input', 'an adapter appears twice in one chat session');
    const insert = this.db.prepare('INSERT INTO chat_session_adapters (session_id, adapter_id, position) VALUES (?, ?, ?)');
    adapterIds.forEach((adapterId, position) =>
      translateConstraint(() => insert.run(sessionId, adapterId, position), { foreignKey: `adapter ${adapterId} does not exist` }),
    );
  }
}
