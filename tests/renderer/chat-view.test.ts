// ChatView against the real service on a tiny model and a LoRA adapter, through the data-testids the end-to-end
// test uses: without a model it says to open one in Models; with one, adapters sent from another view open as
// columns, Ctrl+Enter streams two different answers, a column's select swaps its adapter in the open session,
// columns are added and removed, and a bad sampling field blocks sending and says why.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openModel } from '../../main/models/open-model.ts';
import { installChatSessions, type ChatSessions } from '../../main/service/chat-sessions.ts';
import { api, setApi, type PeftStudioApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { chatState } from '../../renderer/lib/state/chat.svelte.ts';
import ChatView from '../../renderer/views/ChatView.svelte';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { randomAdapter } from '../service/adapter-fixtures.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const llama = tinyModelDir('llama3');
const LONG = { timeout: 60_000 };

describe.skipIf(!llama && !oracleRequired())('chat view', () => {
  let root: string;
  let a: string;
  let b: string;
  let service: ServiceApi;
  let sessions: ChatSessions;
  let modelOpens: number;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'chat-view-'));
    a = randomAdapter(llama!, join(root, 'adapter-a'), {}, 1);
    b = randomAdapter(llama!, join(root, 'adapter-b'), { r: 8, lora_alpha: 16 }, 2);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  /** At each streamed token: whether Stop was enabled, and the text each chat-answer showed. */
  let seen: { stop: boolean; shown: string[] }[];
  beforeEach(async () => {
    service = serviceApi();
    modelOpens = 0;
    seen = [];
    sessions = await installChatSessions(service.store, { session: { threads: 1 }, openModel: (path) => (modelOpens++, openModel(path)) });
    const request: PeftStudioApi['request'] = (method, params, options = {}) => {
      const { onEvent } = options;
      const record = (e: Parameters<NonNullable<typeof onEvent>>[0]) => {
        seen.push({ stop: !(screen.getByTestId('chat-stop') as HTMLButtonElement).disabled, shown: answers() });
        onEvent!(e);
      };
      return service.request(method, params, { ...options, ...(onEvent ? { onEvent: record } : {}) });
    };
    setApi({ ...service, request });
  });
  afterEach(async () => {
    await sessions.closeAll();
    setApi(undefined);
    service.close();
  });

  const columns = () => screen.getAllByTestId('chat-column');
  const answers = () => screen.getAllByTestId('chat-answer').map((e) => e.textContent ?? '');

  it('says to open a model in Models when none is open', async () => {
    const app = new AppState();
    render(ChatView, { app });
    expect(screen.getByRole('status').textContent).toMatch(/Open a model in Models/);
    await fireEvent.click(screen.getByText(/Go to Models/));
    expect(app.view).toBe('models');
  });

  it('streams two different answers side by side, and swaps a column’s adapter', async () => {
    const app = new AppState();
    app.workspace.model = await api().request('models.describe', { path: llama! });
    app.workspace.chatAdapters = [a];
    const chat = chatState(app);
    render(ChatView, { app });
    await waitFor(() => expect(chat.sessionId).toBeDefined(), LONG);
    expect(columns().map((c) => c.getAttribute('data-adapter'))).toEqual(['base', a]);

    await fireEvent.input(screen.getByTestId('chat-max-tokens'), { target: { value: '8' } });
    const prompt = screen.getByTestId('chat-prompt') as HTMLTextAreaElement;
    await fireEvent.input(prompt, { target: { value: 'Name a river.' } });
    await fireEvent.keyDown(prompt, { key: 'Enter', ctrlKey: true });
    expect((screen.getByTestId('chat-send') as HTMLButtonElement).disabled).toBe(true);
    await waitFor(() => expect(chat.ask.status).toBe('done'), LONG);
    const [base, lora] = answers();
    expect(base).not.toBe('');
    expect(lora).not.toBe('');
    expect(base).not.toBe(lora);
    // While streaming, Stop was on and each chat-answer showed its text growing, token by token.
    expect(seen.every((s) => s.stop)).toBe(true);
    for (const [column, final] of [base!, lora!].entries()) {
      const shown = seen.map((s) => s.shown[column]!);
      shown.forEach((text, i) => expect(final.startsWith(text) && text.length >= (shown[i - 1] ?? '').length).toBe(true));
      expect(shown.some((text) => text !== '' && text !== final)).toBe(true);
    }
    expect(prompt.value).toBe('');
    expect((screen.getByTestId('chat-stop') as HTMLButtonElement).disabled).toBe(true);

    const select = within(columns()[1]!).getByTestId('chat-adapter-select') as HTMLSelectElement;
    expect([...select.options].map((o) => o.value)).toEqual(['base', a]);
    expect(select.value).toBe(a);
    chat.offer(b);
    await waitFor(() => expect(select.options.length).toBe(3));
    await fireEvent.change(select, { target: { value: b } });
    await waitFor(() => expect(columns()[1]!.getAttribute('data-adapter')).toBe(b), LONG);
    expect(within(columns()[1]!).getByTestId('chat-swap-note').textContent).toMatch(/adapter tensors only/);
    expect(select.value).toBe(b);
    expect(modelOpens).toBe(1);

    await fireEvent.click(screen.getByText('New conversation'));
    await fireEvent.input(prompt, { target: { value: 'Name a river.' } });
    await fireEvent.click(screen.getByTestId('chat-send'));
    await waitFor(() => expect(chat.ask.status).toBe('done'), LONG);
    const swapped = answers();
    expect(swapped[0]).toBe(base);
    expect(swapped[1]).not.toBe(lora);
    expect(swapped[1]).not.toBe('');
  });

  it('adds and removes columns, and blocks sending on a bad sampling field', async () => {
    const app = new AppState();
    app.workspace.model = await api().request('models.describe', { path: llama! });
    const chat = chatState(app);
    render(ChatView, { app });
    await waitFor(() => expect(chat.sessionId).toBeDefined(), LONG);
    expect(columns().map((c) => c.getAttribute('data-adapter'))).toEqual(['base']);
    expect((screen.getByTestId('chat-remove-column') as HTMLButtonElement).disabled).toBe(true);

    chat.offer(a);
    await fireEvent.click(screen.getByTestId('chat-add-column'));
    await waitFor(() => expect(columns().map((c) => c.getAttribute('data-adapter'))).toEqual(['base', a]), LONG);
    await waitFor(() => expect(chat.busy).toBe(false), LONG);
    await fireEvent.click(within(columns()[0]!).getByTestId('chat-remove-column'));
    await waitFor(() => expect(columns().map((c) => c.getAttribute('data-adapter'))).toEqual([a]), LONG);

    await fireEvent.input(screen.getByTestId('chat-prompt'), { target: { value: 'hi' } });
    expect((screen.getByTestId('chat-send') as HTMLButtonElement).disabled).toBe(false);
    await fireEvent.input(screen.getByTestId('chat-temperature'), { target: { value: '-1' } });
    expect((screen.getByTestId('chat-send') as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText(/must be ≥ 0/)).toBeTruthy();
  });
});
