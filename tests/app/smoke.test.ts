// The packaged app's smoke check (run in a real Electron by the release workflow), driven here with a fake page.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { judgeSmoke, runSmokeCheck, SMOKE_SCRIPT, type SmokeContents } from '../../main/app/smoke.ts';

const page = (answer: () => Promise<unknown>) => {
  const events = new EventEmitter();
  const scripts: string[] = [];
  const contents: SmokeContents = {
    executeJavaScript: (code) => (scripts.push(code), answer()),
    once: ((event: string, listener: (...args: unknown[]) => void) => events.once(event, listener)) as SmokeContents['once'],
  };
  return { contents, events, scripts };
};

const good = JSON.stringify({ host: 'electron', apiKeys: ['host', 'pathForFile', 'pickPath', 'request'], require: 'undefined', process: 'undefined' });

describe('smoke check', () => {
  it('passes when the loaded page reaches the service through window.api and sees no Node', async () => {
    const p = page(async () => good);
    const result = runSmokeCheck(p.contents, 10_000);
    p.events.emit('did-finish-load');
    expect(await result).toMatchObject({ ok: true });
    expect(p.scripts).toEqual([SMOKE_SCRIPT]);
    expect(SMOKE_SCRIPT).toContain("window.api.request('app.info'");
  });

  it('fails on a page that sees Node, an api with extra members, another host, or an unreadable answer', () => {
    const seen = (patch: object) => JSON.stringify({ ...JSON.parse(good), ...patch });
    expect(judgeSmoke(seen({ require: 'function' }))).toMatchObject({ ok: false, detail: 'the page can see require (function)' });
    expect(judgeSmoke(seen({ process: 'object' })).detail).toContain('process');
    expect(judgeSmoke(seen({ apiKeys: ['host', 'ipcRenderer', 'pathForFile', 'pickPath', 'request'] })).detail).toContain('ipcRenderer');
    expect(judgeSmoke(seen({ host: 'serve' })).detail).toContain('host serve');
    expect(judgeSmoke('nope').ok).toBe(false);
  });

  it('fails when the page does not load, the request fails, or nothing answers', async () => {
    const unloaded = page(async () => good);
    const r1 = runSmokeCheck(unloaded.contents, 10_000);
    unloaded.events.emit('did-fail-load', {}, -6, 'ERR_FILE_NOT_FOUND');
    expect(await r1).toEqual({ ok: false, detail: 'the page did not load: ERR_FILE_NOT_FOUND (-6)' });
    const failing = page(async () => Promise.reject(new Error('window.api is not defined')));
    const r2 = runSmokeCheck(failing.contents, 10_000);
    failing.events.emit('did-finish-load');
    expect(await r2).toMatchObject({ ok: false, detail: expect.stringContaining('window.api is not defined') });
    const silent = page(() => new Promise(() => {}));
    const r3 = runSmokeCheck(silent.contents, 50);
    silent.events.emit('did-finish-load');
    expect(await r3).toMatchObject({ ok: false, detail: 'no answer from the page within 50 ms' });
  });
});
