// The preload as it ships (dist/preload/index.cjs from scripts/build-app.ts), run the way a sandboxed preload runs:
// CommonJS, with a require() that offers electron and nothing else. Electron's contextBridge, ipcRenderer and webUtils
// are fakes; what the page receives is exactly window.api, whose requests are routed by id.
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPC_CHANNELS as MAIN_CHANNELS } from '../../main/app/ipc-channels.ts';
import type { ResponseMessage } from '../../main/service/api-contract.ts';
import type { PeftStudioApi } from '../../main/service/window-api.ts';
import { IPC_CHANNELS as PRELOAD_CHANNELS } from '../../preload/channels.ts';
import { buildAppForTest } from './build-for-test.ts';

let preloadSource = '';
let removeBuild = () => {};
beforeAll(async () => {
  const built = await buildAppForTest();
  removeBuild = built.remove;
  preloadSource = readFileSync(built.preload, 'utf8');
});
afterAll(() => removeBuild());

interface Loaded {
  readonly exposed: [string, unknown][];
  readonly required: string[];
  readonly sent: [string, unknown][];
  readonly invoked: [string, unknown][];
  readonly api: PeftStudioApi;
  /** Main answering: one ResponseMessage on the response channel. */
  respond(message: ResponseMessage): void;
  invokeReply: unknown;
  pathOnDisk: string;
  readonly ipcRenderer: object;
}

/** Runs the bundled preload in a fresh context with fake electron modules. */
const loadPreload = (): Loaded => {
  const listeners = new Map<string, ((event: unknown, payload: unknown) => void)[]>();
  const loaded = {
    exposed: [] as [string, unknown][],
    required: [] as string[],
    sent: [] as [string, unknown][],
    invoked: [] as [string, unknown][],
    invokeReply: { ok: true, path: null } as unknown,
    pathOnDisk: '',
  } as Loaded & { api: PeftStudioApi };
  const ipcRenderer = {
    send: (channel: string, message: unknown) => void loaded.sent.push([channel, message]),
    invoke: async (channel: string, payload: unknown) => (loaded.invoked.push([channel, payload]), loaded.invokeReply),
    on: (channel: string, listener: (event: unknown, payload: unknown) => void) => void listeners.set(channel, [...(listeners.get(channel) ?? []), listener]),
  };
  const electron = {
    contextBridge: { exposeInMainWorld: (key: string, value: unknown) => void loaded.exposed.push([key, value]) },
    ipcRenderer,
    webUtils: { getPathForFile: () => loaded.pathOnDisk },
  };
  const module = { exports: {} };
  runInNewContext(preloadSource, {
    module,
    exports: module.exports,
    console,
    require: (name: string) => {
      loaded.required.push(name);
      if (name !== 'electron') throw new Error(`a sandboxed preload cannot require ${name}`);
      return electron;
    },
  });
  Object.assign(loaded, {
    ipcRenderer,
    api: loaded.exposed[0]?.[1] as PeftStudioApi,
    respond: (message: ResponseMessage) => listeners.get(PRELOAD_CHANNELS.response)?.forEach((l) => l({}, JSON.stringify(message))),
  });
  return loaded;
};

describe('the bundled preload', () => {
  it('requires only electron and exposes exactly window.api: host, request, pathForFile, pickPath', () => {
    const p = loadPreload();
    expect(p.required).toEqual(['electron']);
    expect(p.exposed.map(([key]) => key)).toEqual(['api']);
    expect(Object.keys(p.api).sort()).toEqual(['host', 'pathForFile', 'pickPath', 'request']);
    expect(p.api.host).toBe('electron');
    for (const key of ['request', 'pathForFile', 'pickPath'] as const) expect(typeof p.api[key]).toBe('function');
  });

  it('hands the page no way to Node or to raw IPC', () => {
    const p = loadPreload();
    const values = Object.values(p.api as object);
    expect(values).not.toContain(p.ipcRenderer);
    for (const value of values) expect(typeof value === 'function' || typeof value === 'string').toBe(true);
    // What the functions return is data, never an electron object.
    expect(p.api.pathForFile({} as File)).toBeNull();
    const pending = p.api.request('app.info', {}, { id: 'n-1' });
    expect(typeof pending.then).toBe('function');
    p.respond({ id: 'n-1', type: 'result', result: { version: '0', dataDir: '/d', host: 'electron', platform: 'linux-x64' } });
    return expect(pending).resolves.toEqual({ version: '0', dataDir: '/d', host: 'electron', platform: 'linux-x64' });
  });

  it('uses the same channel names as main', () => {
    expect(PRELOAD_CHANNELS).toEqual(MAIN_CHANNELS);
    const p = loadPreload();
    void p.api.request('app.info', {});
    expect(p.sent[0]![0]).toBe(MAIN_CHANNELS.request);
  });
});

describe('window.api requests', () => {
  it('sends {id, method, params} and routes events and results by id, in any order', async () => {
    const p = loadPreload();
    const eventsA: unknown[] = [];
    const eventsB: unknown[] = [];
    const a = p.api.request('train.start', { config: {} as never }, { id: 'run-a', onEvent: (e) => eventsA.push(e) });
    const b = p.api.request('train.start', { config: {} as never }, { id: 'run-b', onEvent: (e) => eventsB.push(e) });
    expect(p.sent.map(([, m]) => m)).toEqual([
      { id: 'run-a', method: 'train.start', params: { config: {} } },
      { id: 'run-b', method: 'train.start', params: { config: {} } },
    ]);
    p.respond({ id: 'run-b', type: 'event', event: { type: 'step', step: 1 } as never });
    p.respond({ id: 'run-a', type: 'event', event: { type: 'step', step: 7 } as never });
    p.respond({ id: 'someone-else', type: 'event', event: { type: 'step', step: 99 } as never });
    p.respond({ id: 'run-b', type: 'result', result: { runId: 2, status: 'completed', steps: 1 } });
    p.respond({ id: 'run-a', type: 'event', event: { type: 'step', step: 8 } as never });
    p.respond({ id: 'run-a', type: 'result', result: { runId: 1, status: 'cancelled', steps: 8 } });
    expect(await a).toEqual({ runId: 1, status: 'cancelled', steps: 8 });
    expect(await b).toEqual({ runId: 2, status: 'completed', steps: 1 });
    expect(eventsA).toEqual([{ type: 'step', step: 7 }, { type: 'step', step: 8 }]);
    expect(eventsB).toEqual([{ type: 'step', step: 1 }]);
    // A late event for a settled request goes nowhere.
    p.respond({ id: 'run-a', type: 'event', event: { type: 'step', step: 9 } as never });
    expect(eventsA).toHaveLength(2);
  });

  it('rejects with the error’s code, field and message (kept through contextBridge as a plain object)', async () => {
    const p = loadPreload();
    const pending = p.api.request('runs.show', { id: 3 }, { id: 'bad' });
    p.respond({ id: 'bad', type: 'error', error: { code: 'bad-request', field: 'params.id', message: 'params.id: Invalid type' } });
    const err = await pending.then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ name: 'ApiRequestError', method: 'runs.show', code: 'bad-request', field: 'params.id', message: 'params.id: Invalid type' });
    expect(String(err)).toBe('params.id: Invalid type');
    // Own data properties plus its toString, on a plain object (contextBridge copies those; an Error would lose them).
    expect(Object.keys(err as object).sort()).toEqual(['code', 'field', 'message', 'method', 'name', 'toString']);
    expect(Object.prototype.toString.call(err)).toBe('[object Object]');
  });

  it('makes up unique ids, refuses a duplicate or empty one and params that are not JSON, without sending', async () => {
    const p = loadPreload();
    void p.api.request('runs.list', {});
    void p.api.request('runs.list', {});
    const ids = p.sent.map(([, m]) => (m as { id: string }).id);
    expect(new Set(ids).size).toBe(2);
    void p.api.request('runs.list', {}, { id: 'dup' });
    await expect(p.api.request('runs.list', {}, { id: 'dup' })).rejects.toMatchObject({ code: 'bad-request', field: 'id' });
    await expect(p.api.request('runs.list', {}, { id: '' })).rejects.toMatchObject({ code: 'bad-request', field: 'id' });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expect(p.api.request('runs.list', cyclic as never)).rejects.toMatchObject({ code: 'bad-request', field: 'params' });
    expect(p.sent).toHaveLength(3);
  });

  it('sends params as JSON data, as `serve` would: undefined fields dropped, functions refused by JSON', () => {
    const p = loadPreload();
    void p.api.request('runs.list', { status: undefined, limit: 5 } as never, { id: 'j' });
    expect(p.sent[0]![1]).toEqual({ id: 'j', method: 'runs.list', params: { limit: 5 } });
    expect(Object.keys((p.sent[0]![1] as { params: object }).params)).toEqual(['limit']);
  });
});

describe('window.api files', () => {
  it('pathForFile gives the dropped file’s path, or null for a file not on disk', () => {
    const p = loadPreload();
    expect(p.api.pathForFile({} as File)).toBeNull();
    p.pathOnDisk = '/home/me/data.jsonl';
    expect(p.api.pathForFile({} as File)).toBe('/home/me/data.jsonl');
  });

  it('pickPath asks main on its own channel and resolves with the path, or rejects with main’s error', async () => {
    const p = loadPreload();
    p.invokeReply = { ok: true, path: '/models/qwen3' };
    expect(await p.api.pickPath({ kind: 'folder', title: 'Open a model' })).toBe('/models/qwen3');
    expect(p.invoked).toEqual([[MAIN_CHANNELS.pickPath, { kind: 'folder', title: 'Open a model' }]]);
    p.invokeReply = { ok: false, error: { code: 'bad-request', field: 'options.kind', message: 'options.kind: Invalid option' } };
    await expect(p.api.pickPath({ kind: 'nope' as never })).rejects.toMatchObject({ code: 'bad-request', field: 'options.kind' });
  });
});
