// Chat sessions kept by the service for the chat view: each holds one opened model and its columns' graphs across
// prompts (openSideBySideChat), so asking again, or switching one column's adapter (a tensor swap for LoRA), never
// reopens the model. Sessions cost memory (every graph holds a copy of the model's weights in ORT), so they do not
// outlive their use:
//   - chat.close releases a session at once;
//   - chat.open with `replace` releases the session it replaces first (the view does so when it reopens: another
//     model, or a lost session), and reuses that session's opened model when it is the same model;
//   - at most `maxSessions` (default 2) are open: opening one more releases the least recently used;
//   - a session unused for `idleMs` (default 10 minutes; never while it answers) is released.
// A request for a released session fails with ChatSessionError, saying to open it again.
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import type { ColumnSwap, PassKind, SideBySideColumn } from '../generate/side-by-side.ts';
import { openModel as openModelFile, type OpenedModel } from '../models/open-model.ts';
import type { Store } from '../store/index.ts';
import { openSideBySideChat, type AskOptions, type ChatAnswer, type SideBySideChat } from './chat.ts';
import { MAX_SIDE_BY_SIDE_ADAPTERS } from '../generate/side-by-side.ts';

export class ChatSessionError extends Error {
  override readonly name = 'ChatSessionError';
}

export const CHAT_IDLE_MS = 10 * 60_000;
export const CHAT_MAX_SESSIONS = 2;

export interface ChatSessionsOptions {
  readonly idleMs?: number;
  readonly maxSessions?: number;
  /** How a model path is opened (default: openModel, GGUF kept 4-bit). Tests count calls through it. */
  readonly openModel?: (path: string) => OpenedModel;
  /** Told of every ORT session a chat session creates. */
  readonly onSession?: (kind: PassKind, label: string) => void;
  readonly session?: SessionOptions;
}

export interface ChatOpened {
  readonly sessionId: number;
  /** The model's folder or file. */
  readonly model: string;
  readonly columns: readonly SideBySideColumn[];
  /** The adapter configs' warnings (unknown fields, fields PEFT ignores). */
  readonly warnings: readonly string[];
  /** Whether the model was opened from disk (false: the replaced session's was reused). */
  readonly modelOpened: boolean;
  readonly ms: number;
}

export interface ChatColumnSet {
  readonly columns: readonly SideBySideColumn[];
  readonly warnings: readonly string[];
  /** What the switch took (no model reload ever; a graph only where the adapter needs one). */
  readonly swap: ColumnSwap;
}

interface Entry {
  readonly id: number;
  readonly model: string;
  readonly chat: SideBySideChat;
  lastUsed: number;
  /** Requests running on it (an idle release waits for none). */
  busy: number;
  /** Operations on one session run one at a time (a switch waits for an answer in progress); never rejects. */
  queue: Promise<void>;
  /** Stops the answer in progress when the session is closed. */
  readonly abort: AbortController;
  timer?: ReturnType<typeof setTimeout>;
}

export interface OpenSessionParams {
  readonly model: string;
  readonly columns: readonly { readonly adapter: string | null }[];
  readonly replace?: number;
}

export class ChatSessions {
  private readonly sessions = new Map<number, Entry>();
  private nextId = 1;
  private readonly idleMs: number;
  private readonly maxSessions: number;

  constructor(private readonly o: ChatSessionsOptions = {}) {
    this.idleMs = o.idleMs ?? CHAT_IDLE_MS;
    this.maxSessions = o.maxSessions ?? CHAT_MAX_SESSIONS;
  }

  /** The sessions open now (ids). */
  get open(): readonly number[] {
    return [...this.sessions.keys()];
  }

  async openSession(p: OpenSessionParams): Promise<ChatOpened> {
    const started = performance.now();
    const adapters = p.columns.filter((c) => c.adapter !== null).length;
    if (adapters > MAX_SIDE_BY_SIDE_ADAPTERS) throw new ChatSessionError(`at most ${MAX_SIDE_BY_SIDE_ADAPTERS} adapters side by side, got ${adapters}`);
    const replaced = p.replace === undefined ? undefined : this.sessions.get(p.replace);
    const reused = replaced?.model === p.model ? replaced.chat.opened : undefined;
    if (replaced) await this.close(replaced.id);
    while (this.sessions.size >= this.maxSessions) {
      const oldest = [...this.sessions.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      await this.close(oldest.id);
    }
    const opened = reused ?? (this.o.openModel ?? ((path: string) => openModelFile(path, { keepQuantized: true })))(p.model);
    const chat = await openSideBySideChat({
      model: opened,
      columns: p.columns.map((c) => c.adapter),
      // Every slot a view can fill, so a LoRA switch is a tensor swap and never a new graph for want of a slot.
      slots: MAX_SIDE_BY_SIDE_ADAPTERS,
      ...(this.o.session ? { session: this.o.session } : {}),
      ...(this.o.onSession ? { onSession: this.o.onSession } : {}),
    });
    const entry: Entry = { id: this.nextId++, model: p.model, chat, lastUsed: Date.now(), busy: 0, queue: Promise.resolve(), abort: new AbortController() };
    this.sessions.set(entry.id, entry);
    this.arm(entry);
    return { sessionId: entry.id, model: p.model, columns: chat.columns, warnings: chat.warnings, modelOpened: !reused, ms: performance.now() - started };
  }

  setColumn(sessionId: number, column: number, adapter: string | null): Promise<ChatColumnSet> {
    return this.run(sessionId, async (e) => {
      const swap = await e.chat.setColumn(column, adapter);
      return { columns: e.chat.columns, warnings: e.chat.warnings, swap };
    });
  }

  removeColumn(sessionId: number, column: number): Promise<{ readonly columns: readonly SideBySideColumn[] }> {
    return this.run(sessionId, async (e) => {
      await e.chat.removeColumn(column);
      return { columns: e.chat.columns };
    });
  }

  /** Every column's answer; stopped by `signal` (jobs.cancel) or when the session closes. */
  ask(sessionId: number, a: AskOptions): Promise<{ readonly answers: readonly ChatAnswer[] }> {
    return this.run(sessionId, async (e) => {
      const signal = a.signal ? AbortSignal.any([a.signal, e.abort.signal]) : e.abort.signal;
      return { answers: await e.chat.ask({ ...a, signal }) };
    });
  }

  /** Releases the session (an answer in progress is stopped first). Whether it was open. */
  async close(sessionId: number): Promise<boolean> {
    const e = this.sessions.get(sessionId);
    if (!e) return false;
    this.sessions.delete(sessionId);
    clearTimeout(e.timer);
    e.abort.abort();
    await e.queue;
    await e.chat.release();
    return true;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.close(id)));
  }

  private entry(sessionId: number): Entry {
    const e = this.sessions.get(sessionId);
    if (!e) throw new ChatSessionError(`chat session ${sessionId} is not open (closed, replaced, or released after ${this.idleMs < 60_000 ? `${this.idleMs / 1000} s` : `${Math.round(this.idleMs / 60_000)} min`} unused): open it again`);
    return e;
  }

  /** Runs `work` after the session's earlier operations, keeping the session from an idle release meanwhile. */
  private run<T>(sessionId: number, work: (e: Entry) => Promise<T>): Promise<T> {
    const e = this.entry(sessionId);
    e.busy++;
    const result = e.queue.then(() => {
      if (!this.sessions.has(e.id)) this.entry(e.id);
      return work(e);
    });
    // The queue never rejects: a failed operation's error goes to its caller only.
    e.queue = result.then(
      () => this.settled(e),
      () => this.settled(e),
    );
    return result;
  }

  private settled(e: Entry): void {
    e.busy--;
    e.lastUsed = Date.now();
    this.arm(e);
  }

  private arm(e: Entry): void {
    clearTimeout(e.timer);
    if (!this.sessions.has(e.id)) return;
    e.timer = setTimeout(() => {
      if (e.busy > 0) this.arm(e);
      else void this.close(e.id);
    }, this.idleMs);
    // An idle session never keeps the process alive.
    e.timer.unref?.();
  }
}

const registries = new WeakMap<Store, ChatSessions>();

/** The chat sessions kept for one store (one service): made on first use. */
export const chatSessionsFor = (store: Store): ChatSessions => {
  let sessions = registries.get(store);
  if (!sessions) registries.set(store, (sessions = new ChatSessions()));
  return sessions;
};

/** Gives a store's service these chat sessions (options: limits, hooks); the ones it had are closed. */
export const installChatSessions = async (store: Store, o: ChatSessionsOptions = {}): Promise<ChatSessions> => {
  await registries.get(store)?.closeAll();
  const sessions = new ChatSessions(o);
  registries.set(store, sessions);
  return sessions;
};
