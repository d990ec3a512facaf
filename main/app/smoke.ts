// PEFT_STUDIO_SMOKE=1: the release workflow's check of a packaged app in a real Electron, the one place where
// Electron's binary runs. Once the window has loaded, the page itself asks the service for app.info through
// window.api: that answer proves app://, the CSP-served renderer, the preload, the IPC bridge, the service worker
// and SQLite's native module inside Electron. The page must also see no Node (no require, no process) and a
// window.api with exactly its four members.
export interface SmokeContents {
  executeJavaScript(code: string): Promise<unknown>;
  once(event: 'did-finish-load', listener: () => void): unknown;
  once(event: 'did-fail-load', listener: (event: unknown, code: number, description: string) => void): unknown;
}

export const SMOKE_ENV = 'PEFT_STUDIO_SMOKE';

/** Runs in the page (main world), as the renderer's own code would. */
export const SMOKE_SCRIPT = `window.api.request('app.info', {}).then((info) => JSON.stringify({
  host: info.host,
  apiKeys: Object.keys(window.api).sort(),
  require: typeof require,
  process: typeof process,
}))`;

export interface SmokeResult {
  readonly ok: boolean;
  readonly detail: string;
}

const EXPECTED_KEYS = ['host', 'pathForFile', 'pickPath', 'request'];

export const judgeSmoke = (answer: unknown): SmokeResult => {
  let seen: { host?: unknown; apiKeys?: unknown; require?: unknown; process?: unknown };
  try {
    seen = JSON.parse(String(answer)) as typeof seen;
  } catch {
    return { ok: false, detail: `the page answered ${String(answer)}` };
  }
  const problems = [
    seen.host !== 'electron' && `app.info says host ${String(seen.host)}, not electron`,
    JSON.stringify(seen.apiKeys) !== JSON.stringify(EXPECTED_KEYS) && `window.api has ${JSON.stringify(seen.apiKeys)}, not ${JSON.stringify(EXPECTED_KEYS)}`,
    seen.require !== 'undefined' && `the page can see require (${String(seen.require)})`,
    seen.process !== 'undefined' && `the page can see process (${String(seen.process)})`,
  ].filter((p): p is string => typeof p === 'string');
  return problems.length === 0
    ? { ok: true, detail: 'the page reached the service through window.api (app.info) and sees no Node' }
    : { ok: false, detail: problems.join('; ') };
};

/** Waits for the page, runs SMOKE_SCRIPT in it and judges the answer; never rejects. */
export const runSmokeCheck = (contents: SmokeContents, timeoutMs: number): Promise<SmokeResult> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, detail: `no answer from the page within ${timeoutMs} ms` }), timeoutMs);
    const finish = (result: SmokeResult) => {
      clearTimeout(timer);
      resolve(result);
    };
    contents.once('did-fail-load', (_event, code, description) => finish({ ok: false, detail: `the page did not load: ${description} (${code})` }));
    contents.once('did-finish-load', () => {
      contents.executeJavaScript(SMOKE_SCRIPT).then(
        (answer) => finish(judgeSmoke(answer)),
        (err: unknown) => finish({ ok: false, detail: `the page's request failed: ${err instanceof Error ? err.message : String(err)}` }),
      );
    });
  });
