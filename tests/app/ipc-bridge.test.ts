// Main's IPC: envelopes validated in main, payloads by the dispatcher, answers routed back to the sending window,
// a closed window's connection closed, the file dialog on its own validated channel. The service is the real one:
// the bundled worker (scripts/build-app.ts) hosting an ApiServer over a store in a temp folder. Electron's ipcMain,
// WebContents and dialog are fakes.
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpcBridge, type BridgeEvent, type BridgeSender, type IpcMainLike } from '../../main/app/ipc-bridge.ts';
import { IPC_CHANNELS } from '../../main/app/ipc-channels.ts';
import { APP_ENTRY_URL } from '../../main/app/origin.ts';
import { startServiceWorker, type ServicePort } from '../../main/app/service-host.ts';
import type { ToService } from '../../main/app/service-protocol.ts';
import type { ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import { createWindowApi } from '../../preload/window-api.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { buildAppForTest } from './build-for-test.ts';

const tinyModel = tinyModelDir('llama3');

class FakeSender extends EventEmitter implements BridgeSender {
  static next = 1;
  readonly id = FakeSender.next++;
  destroyed = false;
  readonly received: ResponseMessage[] = [];
  private readonly waiters: (() => void)[] = [];
  send(channel: string, payload: unknown): void {
    expect(channel).toBe(IPC_CHANNELS.response);
    this.received.push(JSON.parse(payload as string) as ResponseMessage);
    for (const w of this.waiters.splice(0)) w();
  }
  isDestroyed(): boolean {
    return this.destroyed;
  }
  /** The first response for `id`, once it arrives. */
  async responseTo(id: string | null): Promise<ResponseMessage> {
    for (;;) {
      const found = this.received.find((m) => m.id === id && m.type !== 'event');
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('destroyed');
  }
}

class FakeIpcMain implements IpcMainLike {
  readonly listeners = new Map<string, (event: BridgeEvent, payload: unknown) => void>();
  readonly handlers = new Map<string, (event: BridgeEvent, payload: unknown) => unknown>();
  on(channel: string, listener: (event: BridgeEvent, payload: unknown) => void) {
    this.listeners.set(channel, listener);
  }
  handle(channel: string, listener: (event: BridgeEvent, payload: unknown) => unknown) {
    this.handlers.set(channel, listener);
  }
  send(sender: FakeSender, payload: unknown, url = APP_ENTRY_URL, parent: unknown = null): void {
    this.listeners.get(IPC_CHANNELS.request)!({ sender, senderFrame: { url, parent } }, payload);
  }
  invoke(sender: FakeSender, payload: unknown, url = APP_ENTRY_URL): Promise<unknown> {
    return Promise.resolve(this.handlers.get(IPC_CHANNELS.pickPath)!({ sender, senderFrame: { url, parent: null } }, payload));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'peft-ipc-'));
const dbPath = join(dir, 'userData', 'history.db');
const posted: ToService[] = [];
const dialogCalls: unknown[] = [];
let dialogAnswer = { canceled: false, filePaths: ['/data/model.gguf'] };
let bridge: IpcBridge;
let workerEntry = '';
let removeBuild = () => {};
const ipc = new FakeIpcMain();

beforeAll(async () => {
  const built = await buildAppForTest();
  removeBuild = built.remove;
  workerEntry = built.worker;
  bridge = new IpcBridge({
    startService: () => {
      const port = startServiceWorker({ entry: built.worker, dbPath });
      // Records what main tells the worker (the close of a window's connection).
      return { ...port, post: (m) => (posted.push(m), port.post(m)) };
    },
    showOpenDialog: async (_sender, options) => (dialogCalls.push(options), dialogAnswer),
  });
  bridge.listen(ipc);
});
afterAll(async () => {
  await bridge?.stop();
  removeBuild();
  rmSync(dir, { recursive: true, force: true });
});

describe('IPC requests', () => {
  it('a valid request reaches the real ApiServer in the worker and its result comes back to the sender', async () => {
    const window = new FakeSender();
    ipc.send(window, { id: 'info-1', method: 'app.info', params: {} });
    const reply = await window.responseTo('info-1');
    expect(reply).toMatchObject({ type: 'result', result: { host: 'electron', dataDir: join(dir, 'userData') } });
  });

  it.skipIf(!tinyModel && !oracleRequired())('runs the engine in the worker: a chat request streams its tokens, then its result', async () => {
    const window = new FakeSender();
    ipc.send(window, { id: 'chat-1', method: 'chat.sideBySide', params: { model: tinyModel, prompt: 'Hello', sampling: { maxNewTokens: 3, temperature: 0 } } });
    const reply = await window.responseTo('chat-1');
    expect(reply, JSON.stringify(reply)).toMatchObject({ type: 'result', result: { columns: [{ label: 'base', tokens: 3 }] } });
    const tokens = window.received.filter((m) => m.id === 'chat-1' && m.type === 'event');
    expect(tokens.length).toBeGreaterThan(0);
    const answer = reply.type === 'result' ? (reply.result as ApiResults['chat.sideBySide']).columns[0]!.text : undefined;
    expect(tokens.map((m) => (m.type === 'event' ? (m.event as { text: string }).text : '')).join('')).toBe(answer);
  });

  it('answers a malformed envelope with a bad-request error, in main, without throwing', async () => {
    const window = new FakeSender();
    const cases: [unknown, string | null, string][] = [
      [42, null, '(message)'],
      [null, null, '(message)'],
      ['app.info', null, '(message)'],
      [{ id: 'm-1' }, 'm-1', 'method'],
      [{ id: 'm-2', method: 'fs.readFile', params: {} }, 'm-2', 'method'],
      [{ id: '', method: 'app.info' }, null, 'id'],
      [{ id: 7, method: 'app.info' }, null, 'id'],
    ];
    const before = posted.length;
    for (const [payload, id, field] of cases) {
      expect(() => ipc.send(window, payload)).not.toThrow();
      const reply = window.received.at(-1)!;
      expect(reply, JSON.stringify(payload)).toMatchObject({ id, type: 'error', error: { code: 'bad-request', field } });
    }
    // None of them reached the service.
    expect(posted.length).toBe(before);
  });

  it('answers a malformed payload with the dispatcher’s bad-request error naming the field', async () => {
    const window = new FakeSender();
    ipc.send(window, { id: 'p-1', method: 'runs.show', params: { id: 'seven' } });
    ipc.send(window, { id: 'p-2', method: 'datasets.inspect', params: {} });
    expect(await window.responseTo('p-1')).toMatchObject({ type: 'error', error: { code: 'bad-request', field: 'params.id' } });
    expect(await window.responseTo('p-2')).toMatchObject({ type: 'error', error: { code: 'bad-request', field: 'params.path' } });
    // The service is still up.
    ipc.send(window, { id: 'p-3', method: 'app.info' });
    expect(await window.responseTo('p-3')).toMatchObject({ type: 'result' });
  });

  it('routes each answer to the window that asked', async () => {
    const a = new FakeSender();
    const b = new FakeSender();
    ipc.send(a, { id: 'same-id', method: 'runs.list', params: {} });
    ipc.send(b, { id: 'same-id', method: 'runs.show', params: { id: 'x' } });
    expect(await a.responseTo('same-id')).toMatchObject({ type: 'result', result: [] });
    expect(await b.responseTo('same-id')).toMatchObject({ type: 'error', error: { code: 'bad-request' } });
    expect(a.received).toHaveLength(1);
    expect(b.received).toHaveLength(1);
  });

  it('ignores a message from a frame that is not the app’s page', async () => {
    const window = new FakeSender();
    const before = posted.length;
    ipc.send(window, { id: 'x-1', method: 'app.info' }, 'https://evil.example/');
    ipc.send(window, { id: 'x-2', method: 'app.info' }, APP_ENTRY_URL, { url: APP_ENTRY_URL });
    ipc.send(window, { id: 'x-3', method: 'app.info' });
    await window.responseTo('x-3');
    expect(window.received.map((m) => m.id)).toEqual(['x-3']);
    expect(posted.length).toBe(before + 1);
  });

  it('closes a window’s connection when it is destroyed or reloads, not on an in-page navigation', async () => {
    const window = new FakeSender();
    ipc.send(window, { id: 'c-1', method: 'app.info' });
    await window.responseTo('c-1');
    const closes = () => posted.filter((m) => m.type === 'close' && m.conn === window.id).length;
    window.emit('did-start-navigation', { isMainFrame: true, isSameDocument: true });
    window.emit('did-start-navigation', { isMainFrame: false, isSameDocument: false });
    expect(closes()).toBe(0);
    window.emit('did-start-navigation', { isMainFrame: true, isSameDocument: false });
    expect(closes()).toBe(1);
    // The reloaded page gets a fresh connection; closing the window closes that one too.
    ipc.send(window, { id: 'c-2', method: 'app.info' });
    expect(await window.responseTo('c-2')).toMatchObject({ type: 'result' });
    window.destroy();
    expect(closes()).toBe(2);
  });

  it('window.api (the preload) over this bridge: results, and rejections that keep code and field', async () => {
    const window = new FakeSender();
    const listeners: ((event: unknown, payload: unknown) => void)[] = [];
    window.send = (_channel, payload) => listeners.forEach((l) => l({}, payload));
    const api = createWindowApi({
      ipc: {
        send: (_channel, message) => ipc.send(window, message),
        invoke: (_channel, payload) => ipc.invoke(window, payload),
        on: (_channel, listener) => listeners.push(listener),
      },
      webUtils: { getPathForFile: () => '' },
    });
    expect(await api.request('app.info', {})).toMatchObject({ host: 'electron' });
    await expect(api.request('runs.show', { id: 'x' as never })).rejects.toMatchObject({ code: 'bad-request', field: 'params.id' });
    expect(await api.pickPath({ kind: 'file' })).toBe('/data/model.gguf');
  });
});

describe('pickPath channel', () => {
  it('opens the dialog with checked options only', async () => {
    const window = new FakeSender();
    dialogCalls.length = 0;
    expect(await ipc.invoke(window, { kind: 'folder', title: 'Open a model folder' })).toEqual({ ok: true, path: '/data/model.gguf' });
    expect(await ipc.invoke(window, { kind: 'file', filters: [{ name: 'GGUF', extensions: ['gguf'] }] })).toEqual({ ok: true, path: '/data/model.gguf' });
    expect(dialogCalls).toEqual([
      { title: 'Open a model folder', properties: ['openDirectory'] },
      { properties: ['openFile'], filters: [{ name: 'GGUF', extensions: ['gguf'] }] },
    ]);
    dialogAnswer = { canceled: true, filePaths: [] };
    expect(await ipc.invoke(window, { kind: 'file' })).toEqual({ ok: true, path: null });
    dialogAnswer = { canceled: false, filePaths: ['/data/model.gguf'] };
  });

  it('refuses malformed options and foreign frames without opening a dialog', async () => {
    const window = new FakeSender();
    dialogCalls.length = 0;
    const refused: [unknown, string][] = [
      [undefined, 'options'],
      [{ kind: 'anything' }, 'options.kind'],
      [{ kind: 'file', defaultPath: '/etc' }, 'options.defaultPath'],
      [{ kind: 'file', filters: [{ name: 'x', extensions: ['../../x'] }] }, 'options.filters.0.extensions.0'],
      [{ kind: 'file', title: 'x'.repeat(1000) }, 'options.title'],
    ];
    for (const [payload, field] of refused) {
      expect(await ipc.invoke(window, payload), JSON.stringify(payload)).toMatchObject({ ok: false, error: { code: 'bad-request', field } });
    }
    expect(await ipc.invoke(window, { kind: 'file' }, 'https://evil.example/')).toMatchObject({ ok: false, error: { code: 'bad-request' } });
    expect(dialogCalls).toEqual([]);
  });
});

describe('a store that cannot be opened', () => {
  it('answers every request with why, from a worker that stays up', async () => {
    // The database's folder would have to be inside a regular file.
    const blocker = join(dir, 'not-a-folder');
    writeFileSync(blocker, '');
    const broken = new IpcBridge({ startService: () => startServiceWorker({ entry: workerEntry, dbPath: join(blocker, 'history.db') }), showOpenDialog: async () => ({ canceled: true, filePaths: [] }) });
    const brokenIpc = new FakeIpcMain();
    broken.listen(brokenIpc);
    const window = new FakeSender();
    try {
      brokenIpc.send(window, { id: 'b-1', method: 'runs.list', params: {} });
      brokenIpc.send(window, { id: 'b-2', method: 'app.info' });
      for (const id of ['b-1', 'b-2']) {
        expect(await window.responseTo(id)).toMatchObject({ type: 'error', error: { code: 'failed', message: expect.stringContaining(`cannot open the history database ${join(blocker, 'history.db')}`) } });
      }
    } finally {
      await broken.stop();
    }
  });
});

describe('a service worker that dies', () => {
  it('fails the open requests with a clear error and starts a new worker on the next request', async () => {
    const ports: { port: ServicePort; exit: (reason: string) => void; posted: ToService[] }[] = [];
    // A crash cannot be produced on demand in the real worker, so this one service is a fake.
    const fake = (): ServicePort => {
      const posted: ToService[] = [];
      let exit: (reason: string) => void = () => {};
      const port: ServicePort = { post: (m) => void posted.push(m), onMessage: () => {}, onExit: (l) => void (exit = l), stop: async () => {} };
      ports.push({ port, exit: (r) => exit(r), posted });
      return port;
    };
    const fakeIpc = new FakeIpcMain();
    const crashing = new IpcBridge({ startService: fake, showOpenDialog: async () => ({ canceled: true, filePaths: [] }) });
    crashing.listen(fakeIpc);
    const window = new FakeSender();
    fakeIpc.send(window, { id: 'long-1', method: 'train.start', params: {} });
    fakeIpc.send(window, { id: 'long-2', method: 'sweeps.start', params: {} });
    expect(ports).toHaveLength(1);
    ports[0]!.exit('Error: out of memory');
    expect(window.received).toEqual([
      expect.objectContaining({ id: 'long-1', type: 'error', error: expect.objectContaining({ code: 'failed', message: expect.stringContaining('out of memory') }) }),
      expect.objectContaining({ id: 'long-2', type: 'error', error: expect.objectContaining({ code: 'failed' }) }),
    ]);
    fakeIpc.send(window, { id: 'after', method: 'app.info' });
    expect(ports).toHaveLength(2);
    expect(ports[1]!.posted).toEqual([{ type: 'request', conn: window.id, message: { id: 'after', method: 'app.info' } }]);
  });
});
