// ChatState against the real service (ApiServer over a real store) on a tiny model with LoRA adapters: columns
// from the workspace, two columns streaming different answers, a per-column conversation, a hot swap (no model
// reopened: counted through the service's chat-session hook) answering as a fresh session with that adapter does,
// Stop, a bad adapter named in its column, and a session the service released reopened on the next send.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { openModel } from '../../main/models/open-model.ts';
import { installChatSessions, type ChatSessions } from '../../main/service/chat-sessions.ts';
import { api, setApi, type PeftStudioApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { BASE, chatState, type ChatState } from '../../renderer/lib/state/chat.svelte.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter } from '../service/adapter-fixtures.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const llama = tinyModelDir('llama3');

describe.skipIf(!llama && !oracleRequired())('chat state', () => {
  let root: string;
  let a: string;
  let b: string;
  let service: ServiceApi;
  let sessions: ChatSessions;
  let modelOpens: number;
  /** Each column's answer length after every streamed token. */
  let streamed: number[][];
  let chat: ChatState;
  let app: AppState;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'chat-state-'));
    a = randomAdapter(llama!, join(root, 'a'), {}, 1);
    b = randomAdapter(llama!, join(root, 'b'), { r: 8, lora_alpha: 16 }, 2);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  beforeEach(async () => {
    service = serviceApi();
    modelOpens = 0;
    streamed = [];
    sessions = await installChatSessions(service.store, { session: { threads: 1 }, openModel: (path) => (modelOpens++, openModel(path)) });
    const request: PeftStudioApi['request'] = (method, params, options = {}) => {
      const { onEvent } = options;
      const record = (e: Parameters<NonNullable<typeof onEvent>>[0]) => {
        onEvent!(e);
        streamed.push(chat.columns.map((c) => c.current?.answer.length ?? 0));
      };
      return service.request(method, params, { ...options, ...(onEvent ? { onEvent: record } : {}) });
    };
    setApi({ ...service, request });
    app = new AppState();
    app.workspace.model = await api().request('models.describe', { path: llama! });
    chat = chatState(app);
    chat.sampling.maxNewTokens = 8;
  });
  afterEach(async () => {
    await sessions.closeAll();
    setApi(undefined);
    service.close();
  });

  const say = async (prompt: string) => {
    chat.prompt = prompt;
    await chat.send();
    expect([chat.ask.status, chat.ask.error]).toEqual(['done', undefined]);
  };

  it('opens the columns other views sent, and streams two different answers', async () => {
    app.workspace.chatAdapters = [a];
    await chat.sync();
    expect(app.workspace.chatAdapters).toEqual([]);
    expect(chat.columns.map((c) => [c.adapter, c.info?.peftType, c.info?.pass])).toEqual([[null, null, 'batched'], [a, 'LORA', 'batched']]);
    expect(chat.adapterOptions.map((o) => o.value)).toEqual([BASE, a]);

    await say('Name a river.');
    const [base, lora] = chat.columns.map((c) => c.current!.answer);
    expect(base).not.toBe('');
    expect(lora).not.toBe('');
    expect(base).not.toBe(lora);
    expect(chat.columns.map((c) => [c.tokens, c.finish])).toEqual([[8, 'length'], [8, 'length']]);
    // The answers grew token by token, both columns streaming before either ended.
    expect(streamed.length).toBeGreaterThan(4);
    const firstWithBoth = streamed.findIndex((s) => s[0]! > 0 && s[1]! > 0);
    expect(firstWithBoth).toBeGreaterThanOrEqual(0);
    expect(firstWithBoth).toBeLessThan(streamed.length - 2);

    // A second turn: each column is asked with its own conversation.
    await say('And another?');
    const ask = service.sent.filter((m) => m.method === 'chat.ask').at(-1)!.params as { history: { role: string; content: string }[][] };
    expect(ask.history).toEqual([
      [{ role: 'user', content: 'Name a river.' }, { role: 'assistant', content: base }],
      [{ role: 'user', content: 'Name a river.' }, { role: 'assistant', content: lora }],
    ]);
    expect(chat.columns.map((c) => c.turns.length)).toEqual([1, 1]);
    expect(modelOpens).toBe(1);
  });

  it("switches a column's adapter without reopening the model, answering as a fresh session with it", async () => {
    app.workspace.chatAdapters = [a];
    await chat.sync();
    const sessionId = chat.sessionId;
    await say('Name a river.');
    const before = chat.columns.map((c) => c.current!.answer);

    await chat.setAdapter(1, b);
    expect(chat.columns[1]!.error).toBeUndefined();
    expect([chat.sessionId, modelOpens, chat.columns[1]!.adapter]).toEqual([sessionId, 1, b]);
    expect(chat.columns[1]!.swapNote).toMatch(/adapter tensors only/);
    // Its conversation restarted; the other column's did not.
    expect([chat.columns[0]!.current?.answer, chat.columns[1]!.current]).toEqual([before[0], undefined]);
    chat.restart();
    await say('Name a river.');
    const swapped = chat.columns.map((c) => c.current!.answer);
    expect(swapped[0]).toBe(before[0]);
    expect(swapped[1]).not.toBe(before[1]);

    const fresh = new AppState();
    fresh.workspace.model = app.workspace.model;
    fresh.workspace.chatAdapters = [b];
    const other = chatState(fresh);
    other.sampling.maxNewTokens = 8;
    await other.sync();
    other.prompt = 'Name a river.';
    await other.send();
    expect(other.columns.map((c) => c.current!.answer)).toEqual(swapped);
    expect(modelOpens).toBe(2);
  });

  it('adds and removes columns in the open session', async () => {
    await chat.sync();
    expect(chat.columns.map((c) => c.adapter)).toEqual([null]);
    chat.offer(a);
    await chat.addColumn();
    expect(chat.columns.map((c) => [c.adapter, c.info?.peftType])).toEqual([[null, null], [a, 'LORA']]);
    await say('Name a river.');
    expect(chat.columns[0]!.current!.answer).not.toBe(chat.columns[1]!.current!.answer);
    await chat.removeColumn(0);
    await say('Name a river.');
    expect(chat.columns.map((c) => c.adapter)).toEqual([a]);
    expect(modelOpens).toBe(1);
  });

  it('stops the answers on Stop, keeping what each column said', async () => {
    app.workspace.chatAdapters = [a];
    await chat.sync();
    chat.sampling.maxNewTokens = 2000;
    chat.prompt = 'Name a river.';
    const sending = chat.send();
    await vi.waitFor(() => expect(streamed.length).toBeGreaterThan(0), { timeout: 60_000, interval: 5 });
    await chat.stop();
    await sending;
    expect(chat.ask.status).toBe('cancelled');
    expect(chat.columns.map((c) => c.finish)).toEqual(['aborted', 'aborted']);
    for (const c of chat.columns) expect(c.tokens).toBeLessThan(2000);
  });

  it('names a bad adapter folder in its column, which keeps its adapter', async () => {
    app.workspace.chatAdapters = [a];
    await chat.sync();
    const missing = join(root, 'missing-adapter');
    await chat.setAdapter(1, missing);
    expect(chat.columns[1]!.error).toContain(missing);
    expect(chat.columns[1]!.adapter).toBe(a);
    await say('Name a river.');
  });

  it('reopens a session the service released, on the next send', async () => {
    await chat.sync();
    await sessions.close(chat.sessionId!);
    await say('Name a river.');
    expect(chat.columns[0]!.current!.answer).not.toBe('');
    expect(sessions.open).toEqual([chat.sessionId]);
  });

  it('shows nothing to open without a model, and checks the sampling fields', async () => {
    app.workspace.model = undefined;
    await chat.sync();
    expect(chat.sessionId).toBeUndefined();
    chat.prompt = 'hi';
    expect(chat.canSend).toBe(false);
    chat.sampling.temperature = -1;
    chat.sampling.topP = 1.5;
    expect(Object.keys(chat.sampling.errors)).toEqual(['temperature', 'topP']);
    chat.sampling.temperature = 0.7;
    chat.sampling.topP = null;
    expect(chat.sampling.toRequest()).toEqual({ temperature: 0.7, maxNewTokens: 8, seed: 0 });
  });
});
