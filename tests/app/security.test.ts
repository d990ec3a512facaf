// The window's security settings, driven with fake electron objects: what the renderer may run, where it may go,
// what it may ask for, and who may talk to main.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { APP_ENTRY_URL } from '../../main/app/origin.ts';
import {
  CONTENT_SECURITY_POLICY,
  hardenSession,
  hardenWebContents,
  isTrustedFrame,
  NAVIGATION_EVENTS,
  REMOTE_URL_PATTERNS,
  windowWebPreferences,
  type HardenableContents,
  type HardenableSession,
  type Refusal,
} from '../../main/app/security.ts';

const directives = (policy: string): Map<string, string[]> =>
  new Map(policy.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));

describe('window preferences', () => {
  it('keep the renderer sandboxed, isolated and without Node', () => {
    const prefs = windowWebPreferences({ preload: '/app/dist/preload/index.cjs', devTools: false });
    expect(prefs).toMatchObject({
      preload: '/app/dist/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      devTools: false,
    });
    expect(windowWebPreferences({ preload: 'p', devTools: true }).devTools).toBe(true);
  });
});

describe('content security policy', () => {
  const csp = directives(CONTENT_SECURITY_POLICY);

  it('runs only the app’s own scripts: no inline script, no eval, no plugins, no framing', () => {
    expect(csp.get('default-src')).toEqual(["'self'"]);
    expect(csp.get('script-src')).toEqual(["'self'"]);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(csp.get('base-uri')).toEqual(["'none'"]);
    expect(csp.get('form-action')).toEqual(["'none'"]);
  });

  it('names no other host or scheme a page could load from or send to', () => {
    for (const [name, values] of csp) {
      for (const value of values) expect(`${name} ${value}`).toMatch(/ (?:'self'|'none'|'unsafe-inline'|data:)$/);
    }
    expect(csp.get('style-src')).not.toContain("'unsafe-eval'");
  });
});

class FakeContents extends EventEmitter implements HardenableContents {
  openHandler: ((details: { url: string }) => { action: 'deny' }) | undefined;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void {
    this.openHandler = handler;
  }
  /** Emits like Electron: an event whose default can be prevented, then the event's own arguments. */
  attempt(event: string, ...args: unknown[]): boolean {
    let prevented = false;
    this.emit(event, { preventDefault: () => (prevented = true) }, ...args);
    return prevented;
  }
}

describe('hardenWebContents', () => {
  it('refuses every navigation, redirect and webview, and denies window.open', () => {
    const contents = new FakeContents();
    const refusals: Refusal[] = [];
    hardenWebContents(contents, (r) => refusals.push(r));
    expect(contents.attempt('will-navigate', 'https://example.com/')).toBe(true);
    expect(contents.attempt('will-frame-navigate')).toBe(true);
    expect(contents.attempt('will-redirect', 'https://example.com/login')).toBe(true);
    expect(contents.attempt('will-attach-webview', {}, {})).toBe(true);
    expect(contents.openHandler?.({ url: 'https://example.com/popup' })).toEqual({ action: 'deny' });
    expect(refusals.map((r) => r.what)).toEqual([...NAVIGATION_EVENTS, 'window-open']);
    expect(refusals[0]!.detail).toBe('https://example.com/');
    expect(refusals.at(-1)!.detail).toBe('https://example.com/popup');
  });

  it('leaves an unhardened page free to navigate (the fake is not doing the refusing)', () => {
    expect(new FakeContents().attempt('will-navigate', 'https://example.com/')).toBe(false);
  });
});

describe('hardenSession', () => {
  const fakeSession = () => {
    const s = {
      request: undefined as undefined | ((c: unknown, p: string, cb: (granted: boolean) => void) => void),
      check: undefined as undefined | ((c: unknown, p: string) => boolean),
      device: undefined as undefined | ((d: unknown) => boolean),
      filter: undefined as undefined | { urls: string[] },
      before: undefined as undefined | ((d: { url: string }, cb: (r: { cancel: boolean }) => void) => void),
    };
    const session: HardenableSession = {
      setPermissionRequestHandler: (h) => void (s.request = h),
      setPermissionCheckHandler: (h) => void (s.check = h),
      setDevicePermissionHandler: (h) => void (s.device = h),
      webRequest: {
        onBeforeRequest: (filter, listener) => {
          s.filter = filter;
          s.before = listener;
        },
      },
    };
    return { s, session };
  };

  it('denies every permission request and check, and device access', () => {
    const { s, session } = fakeSession();
    hardenSession(session);
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal', 'fileSystem']) {
      let granted: boolean | undefined;
      s.request!({}, permission, (g) => (granted = g));
      expect(granted, permission).toBe(false);
      expect(s.check!({}, permission), permission).toBe(false);
    }
    expect(s.device!({ deviceType: 'usb' })).toBe(false);
  });

  it('cancels every request to another machine', () => {
    const { s, session } = fakeSession();
    const refusals: Refusal[] = [];
    hardenSession(session, (r) => refusals.push(r));
    expect(s.filter!.urls).toEqual(REMOTE_URL_PATTERNS);
    for (const scheme of ['http', 'https', 'ws', 'wss']) expect(s.filter!.urls).toContain(`${scheme}://*/*`);
    let response: { cancel: boolean } | undefined;
    s.before!({ url: 'https://cdn.example.com/x.js' }, (r) => (response = r));
    expect(response).toEqual({ cancel: true });
    expect(refusals).toEqual([{ what: 'request', detail: 'https://cdn.example.com/x.js' }]);
  });
});

describe('isTrustedFrame', () => {
  it('trusts only the app’s own top-level page', () => {
    expect(isTrustedFrame({ url: APP_ENTRY_URL, parent: null })).toBe(true);
    expect(isTrustedFrame({ url: 'app://app/assets/x.html#y', parent: null })).toBe(true);
    expect(isTrustedFrame({ url: APP_ENTRY_URL, parent: {} })).toBe(false);
    expect(isTrustedFrame({ url: 'app://evil/index.html', parent: null })).toBe(false);
    expect(isTrustedFrame({ url: 'https://app/index.html', parent: null })).toBe(false);
    expect(isTrustedFrame({ url: 'file:///work/dist/renderer/index.html', parent: null })).toBe(false);
    expect(isTrustedFrame({ url: 'not a url', parent: null })).toBe(false);
    expect(isTrustedFrame(null)).toBe(false);
  });
});
