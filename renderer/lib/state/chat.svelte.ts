// The Chat area: the base model and up to four adapters side by side on one prompt. A chat session in the service
// keeps the model of the workspace and its columns' graphs open across prompts (chat.open); switching a column's
// adapter swaps it in that session (chat.setColumn, no model reload); each column keeps its own conversation,
// sent with every prompt (chat.ask, streamed, Stop = jobs.cancel). One ChatState lives in app.area('chat'), so a
// conversation and an answer still streaming survive leaving the view. The session is released when the state
// reopens another (chat.open replace), on close(), or by the service after 10 minutes unused — then the next
// request reopens it.
import { api, messageOf, type ApiEvent, type ApiResults } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { Task } from './task.svelte.ts';
import { SamplingSettings } from '../../components/chat/sampling-settings.svelte.ts';

export { SamplingSettings };

export type ColumnInfo = ApiResults['chat.open']['columns'][number];
export type LibraryAdapter = ApiResults['adapters.list'][number];
type Message = { role: 'user' | 'assistant'; content: string };

export const MAX_COLUMNS = 5;
export const MAX_ADAPTER_COLUMNS = 4;
/** The select value (and data-adapter) of the base model. */
export const BASE = 'base';

export interface Turn {
  prompt: string;
  answer: string;
}

export class ChatColumn {
  /** The adapter folder it answers with; null: the base model. */
  adapter = $state<string | null>(null);
  /** What the service opened it as (method, pass). */
  info = $state<ColumnInfo | undefined>(undefined);
  /** Earlier turns of its conversation. */
  turns = $state<Turn[]>([]);
  /** The latest turn: its answer streams in. */
  current = $state<Turn | undefined>(undefined);
  finish = $state<string | undefined>(undefined);
  /** Tokens of the latest answer (pieces while it streams, the service's count once done). */
  tokens = $state(0);
  switching = $state(false);
  error = $state<string | undefined>(undefined);
  /** What the last switch took ("tensors only, 6 ms"). */
  swapNote = $state<string | undefined>(undefined);

  constructor(adapter: string | null = null) {
    this.adapter = adapter;
  }

  /** Its conversation so far, as messages. */
  history(): Message[] {
    return this.turns.flatMap((t) => [
      { role: 'user' as const, content: t.prompt },
      { role: 'assistant' as const, content: t.answer },
    ]);
  }

  restart(): void {
    this.turns = [];
    this.current = undefined;
    this.finish = undefined;
    this.tokens = 0;
  }
}

/** The service released the session (idle, or replaced elsewhere): reopen and go on. */
const sessionGone = (err: unknown): boolean => /chat session \d+ is not open/.test(messageOf(err));

const swapNoteOf = (swap: ApiResults['chat.setColumn']['swap']): string => {
  const took = swap.how === 'none' ? 'nothing to load' : swap.how === 'tensors' ? 'adapter tensors only' : `a new ${swap.how.replace('-', ' ')}`;
  return `switched in ${Math.round(swap.ms)} ms: ${took} (${swap.reason})`;
};

export class ChatState {
  columns = $state<ChatColumn[]>([new ChatColumn()]);
  readonly sampling = new SamplingSettings();
  prompt = $state('');
  sessionId = $state<number | undefined>(undefined);
  /** The model the open session has (a workspace model that differs reopens it). */
  sessionModel = $state<string | undefined>(undefined);
  opening = $state(false);
  /** Why the session could not be opened (a column's bad adapter shows in that column instead). */
  openError = $state<string | undefined>(undefined);
  /** Why Stop did not reach the service. */
  stopError = $state<string | undefined>(undefined);
  warnings = $state<readonly string[]>([]);
  library = $state<LibraryAdapter[]>([]);
  libraryError = $state<string | undefined>(undefined);
  /** Adapter folders offered beside the library's (given by other views, or typed in). */
  extraAdapters = $state<string[]>([]);
  /** How long the last open took, for the header. */
  openedInMs = $state<number | undefined>(undefined);
  readonly ask: Task<'chat.ask'>;
  /** The send in progress (sync waits for it to stop before changing the columns). */
  private sending: Promise<void> | undefined;
  /** The open in progress (another waits for it, so no session is left behind unreplaced). */
  private opening$: Promise<boolean> | undefined;
  private syncing: Promise<void> = Promise.resolve();

  constructor(private readonly app: AppState) {
    this.ask = new Task('chat.ask', (e) => this.onToken(e));
  }

  get model(): string | undefined {
    return this.app.workspace.model?.path;
  }

  get busy(): boolean {
    return this.ask.running || this.opening || this.columns.some((c) => c.switching);
  }

  get canSend(): boolean {
    return !this.busy && !!this.model && this.prompt.trim() !== '' && this.sampling.valid;
  }

  get canAddColumn(): boolean {
    return !this.busy && this.columns.length < MAX_COLUMNS;
  }

  /** What a column's select offers: the base, the library's adapters, and any other folder known here. */
  get adapterOptions(): { value: string; label: string }[] {
    const seen = new Set<string>();
    const options = [{ value: BASE, label: 'base model' }];
    const add = (path: string, label: string) => {
      if (seen.has(path)) return;
      seen.add(path);
      options.push({ value: path, label });
    };
    for (const a of this.library) add(a.path, `${a.name} (${a.peftType})`);
    for (const path of [...this.extraAdapters, ...this.columns.map((c) => c.adapter)]) if (path) add(path, path.split(/[\\/]/).filter(Boolean).pop() ?? path);
    return options;
  }

  async loadLibrary(): Promise<void> {
    try {
      this.library = await api().request('adapters.list', {});
      this.libraryError = undefined;
    } catch (err) {
      this.libraryError = messageOf(err);
    }
  }

  /**
   * Brings the chat in line with the workspace: adapters other views sent (workspace.chatAdapters) become the
   * columns beside the base, and a model other than the session's (or no session yet) opens one.
   */
  sync(): Promise<void> {
    // One at a time: a sync the workspace change of another triggers runs after it, seeing its session.
    const next = this.syncing.then(() => this.syncNow());
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private async syncNow(): Promise<void> {
    while (this.opening$) await this.opening$;
    const incoming = this.app.workspace.chatAdapters;
    if (incoming.length > 0) {
      this.app.workspace.chatAdapters = [];
      // New columns: an answer still streaming into the old ones stops first.
      if (this.ask.running) await this.stop();
      await this.sending;
      this.extraAdapters = [...new Set([...this.extraAdapters, ...incoming])];
      this.columns = [new ChatColumn(), ...incoming.slice(0, MAX_ADAPTER_COLUMNS).map((path) => new ChatColumn(path))];
      if (this.model) await this.open();
      return;
    }
    if (this.model && (this.model !== this.sessionModel || this.sessionId === undefined)) await this.open();
  }

  /** (Re)opens the session for the workspace's model with the current columns, releasing the one it had. */
  async open(): Promise<boolean> {
    while (this.opening$) await this.opening$;
    this.opening$ = this.openNow();
    try {
      return await this.opening$;
    } finally {
      this.opening$ = undefined;
    }
  }

  private async openNow(): Promise<boolean> {
    const model = this.model;
    if (!model || this.ask.running) return false;
    this.opening = true;
    this.openError = undefined;
    for (const c of this.columns) c.error = undefined;
    try {
      const replace = this.sessionId;
      this.sessionId = undefined;
      const r = await api().request('chat.open', { model, columns: this.columns.map((c) => ({ adapter: c.adapter })), ...(replace === undefined ? {} : { replace }) });
      if (model !== this.sessionModel) for (const c of this.columns) c.restart();
      this.sessionId = r.sessionId;
      this.sessionModel = model;
      this.warnings = r.warnings;
      this.openedInMs = r.ms;
      r.columns.forEach((info, i) => (this.columns[i]!.info = info));
      return true;
    } catch (err) {
      const message = messageOf(err);
      const culprit = this.columns.find((c) => c.adapter && message.includes(c.adapter));
      if (culprit) culprit.error = message;
      else this.openError = message;
      return false;
    } finally {
      this.opening = false;
    }
  }

  /** Puts another adapter (BASE or a folder) in a column: swapped in the open session, its conversation restarted. */
  async setAdapter(index: number, value: string): Promise<void> {
    const column = this.columns[index];
    const adapter = value === BASE ? null : value;
    if (!column || column.adapter === adapter || this.busy) return;
    column.error = undefined;
    column.swapNote = undefined;
    if (this.sessionId === undefined) {
      // Nothing open (no model, or the last open failed): the next open takes it.
      column.adapter = adapter;
      column.restart();
      if (this.model) await this.open();
      return;
    }
    column.switching = true;
    try {
      const r = await this.setColumn(index, adapter);
      column.adapter = adapter;
      column.info = r.columns[index];
      column.swapNote = swapNoteOf(r.swap);
      this.warnings = r.warnings;
      column.restart();
    } catch (err) {
      column.error = messageOf(err);
    } finally {
      column.switching = false;
    }
  }

  /** Adds a column with the first adapter no column shows yet (else the base). */
  async addColumn(): Promise<void> {
    if (!this.canAddColumn) return;
    const used = new Set(this.columns.map((c) => c.adapter));
    const adapterColumns = this.columns.filter((c) => c.adapter !== null).length;
    const free = this.adapterOptions.find((o) => o.value !== BASE && !used.has(o.value));
    const column = new ChatColumn(free && adapterColumns < MAX_ADAPTER_COLUMNS ? free.value : null);
    this.columns.push(column);
    if (this.sessionId === undefined) return;
    const index = this.columns.length - 1;
    column.switching = true;
    try {
      const r = await this.setColumn(index, column.adapter);
      column.info = r.columns[index];
    } catch (err) {
      column.error = messageOf(err);
      // The service has no such column: the next open (changing its adapter) adds it.
      this.sessionId = undefined;
    } finally {
      column.switching = false;
    }
  }

  async removeColumn(index: number): Promise<void> {
    if (this.busy || this.columns.length <= 1 || !this.columns[index]) return;
    if (this.sessionId !== undefined) {
      try {
        await api().request('chat.removeColumn', { sessionId: this.sessionId, column: index });
      } catch (err) {
        if (!sessionGone(err)) return void (this.columns[index]!.error = messageOf(err));
        this.sessionId = undefined;
      }
    }
    this.columns.splice(index, 1);
  }

  /** Sends the prompt to every column (each with its own conversation); tokens stream into each column's answer. */
  send(): Promise<void> {
    if (!this.canSend) return Promise.resolve();
    this.sending = this.sendNow().finally(() => (this.sending = undefined));
    return this.sending;
  }

  private async sendNow(): Promise<void> {
    if (this.sessionId === undefined && !(await this.open())) return;
    const prompt = this.prompt;
    const previous = this.columns.map((c) => c.current);
    for (const c of this.columns) {
      if (c.current) c.turns.push(c.current);
      c.current = { prompt, answer: '' };
      c.finish = undefined;
      c.tokens = 0;
    }
    this.prompt = '';
    const params = () => ({
      sessionId: this.sessionId!,
      prompt,
      history: this.columns.map((c) => c.history()),
      sampling: this.sampling.toRequest(),
      ...(this.sampling.system.trim() ? { system: this.sampling.system } : {}),
    });
    let r = await this.ask.run(params());
    if (!r && this.ask.status === 'failed' && sessionGone(this.ask.error) && (await this.open())) r = await this.ask.run(params());
    if (r) {
      r.answers.forEach((a, i) => {
        const c = this.columns[i];
        if (!c) return;
        // The answer as the service ends it (with any bytes the stream still held).
        c.current = { prompt, answer: a.text };
        c.finish = a.finish;
        c.tokens = a.tokens;
      });
      return;
    }
    // Failed: the conversation is as it was, and the prompt back in the box.
    this.columns.forEach((c, i) => {
      c.current = previous[i];
      if (previous[i]) c.turns.pop();
    });
    this.prompt = prompt;
  }

  /** Stops the answers in progress (each column keeps what it said so far). */
  async stop(): Promise<void> {
    this.stopError = undefined;
    try {
      await this.ask.cancel();
    } catch (err) {
      this.stopError = messageOf(err);
    }
  }

  /** Forgets every column's conversation (the session stays open). */
  restart(): void {
    if (this.ask.running) return;
    for (const c of this.columns) c.restart();
  }

  /** Adds a folder to the columns' choices (an adapter outside the library). */
  offer(path: string): void {
    const p = path.trim();
    if (p && !this.extraAdapters.includes(p)) this.extraAdapters = [...this.extraAdapters, p];
  }

  /** Releases the service's session (the columns and conversations stay; the next send reopens it). */
  async close(): Promise<void> {
    const id = this.sessionId;
    if (id === undefined) return;
    this.sessionId = undefined;
    await api().request('chat.close', { sessionId: id });
  }

  private async setColumn(index: number, adapter: string | null): Promise<ApiResults['chat.setColumn']> {
    try {
      return await api().request('chat.setColumn', { sessionId: this.sessionId!, column: index, adapter });
    } catch (err) {
      if (!sessionGone(err)) throw err;
      // Released by the service: reopen with this column as asked.
      const before = this.columns[index]!.adapter;
      this.columns[index]!.adapter = adapter;
      const reopened = await this.open();
      this.columns[index]!.adapter = before;
      if (!reopened) throw err;
      return { columns: this.columns.map((c) => c.info!), warnings: this.warnings, swap: { column: index, how: 'none', reason: 'the session was reopened', ms: this.openedInMs ?? 0 } };
    }
  }

  private onToken(e: ApiEvent<'chat.ask'>): void {
    const c = this.columns[e.column];
    if (!c?.current) return;
    c.current.answer += e.text;
    c.tokens++;
  }
}

/** The app's one ChatState. */
export const chatState = (app: AppState): ChatState => app.area('chat', (a) => new ChatState(a));
