// The window's security settings, as data and as functions over the few electron objects they touch, so tests can
// hand in fakes: a sandboxed, context-isolated renderer without Node, a strict CSP, no navigation away from the app,
// no new windows, no webviews, every permission denied and no request leaving the machine. The renderer reaches
// the app only through the preload's window.api (IPC), whose messages main validates (ipc-bridge.ts).
import type { WebPreferences } from 'electron';
import { RENDERER_CSP } from '../service/renderer-csp.ts';
import { isAppUrl } from './origin.ts';

/** Sent as a header with every file of the app's own scheme (app-protocol.ts): the renderer's one policy. */
export const CONTENT_SECURITY_POLICY = RENDERER_CSP;

export interface WindowPreferencesOptions {
  /** The bundled preload (dist/preload/index.cjs). */
  readonly preload: string;
  /** Developer tools: only when running unpackaged. */
  readonly devTools: boolean;
}

export const windowWebPreferences = (o: WindowPreferencesOptions): WebPreferences => ({
  preload: o.preload,
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  experimentalFeatures: false,
  // A file dropped outside a drop zone must not replace the app with the file.
  navigateOnDragDrop: false,
  // The spellchecker downloads dictionaries from Google.
  spellcheck: false,
  safeDialogs: true,
  devTools: o.devTools,
});

/** The parts of a WebContents the hardening touches (a real one, or a test's fake). */
export interface HardenableContents {
  on(event: NavigationEvent, listener: (event: { preventDefault(): void }, ...rest: unknown[]) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' }): void;
}

/** Events through which a page could leave the app or grow a webview. */
export const NAVIGATION_EVENTS = ['will-navigate', 'will-frame-navigate', 'will-redirect', 'will-attach-webview'] as const;
type NavigationEvent = (typeof NAVIGATION_EVENTS)[number];

export interface Refusal {
  readonly what: NavigationEvent | 'window-open' | 'permission' | 'request';
  readonly detail: string;
}
export type RefusalLog = (refusal: Refusal) => void;

/**
 * Applied to every WebContents the app creates (app 'web-contents-created'): the app is one page that never
 * navigates (its views are in-page state), so every navigation, redirect, webview and window.open is refused.
 */
export const hardenWebContents = (contents: HardenableContents, log: RefusalLog = () => {}): void => {
  for (const what of NAVIGATION_EVENTS) {
    contents.on(what, (event, ...rest) => {
      event.preventDefault();
      log({ what, detail: urlIn([event, ...rest]) });
    });
  }
  contents.setWindowOpenHandler((details) => {
    log({ what: 'window-open', detail: details.url });
    return { action: 'deny' };
  });
};

/** The URL an event carries: Electron passes it as an argument or on the event's details, by event and version. */
const urlIn = (args: readonly unknown[]): string => {
  for (const a of args) {
    if (typeof a === 'string') return a;
    const url = (a as { url?: unknown } | null)?.url;
    if (typeof url === 'string') return url;
  }
  return '';
};

/** The parts of a Session the hardening touches. */
export interface HardenableSession {
  setPermissionRequestHandler(handler: (contents: unknown, permission: string, callback: (granted: boolean) => void) => void): void;
  setPermissionCheckHandler(handler: (contents: unknown, permission: string) => boolean): void;
  setDevicePermissionHandler(handler: (details: unknown) => boolean): void;
  readonly webRequest: {
    onBeforeRequest(filter: { urls: string[] }, listener: (details: { url: string }, callback: (response: { cancel: boolean }) => void) => void): void;
  };
}

/** Every scheme that reaches another machine; the app's own files come over app:// (app-protocol.ts). */
export const REMOTE_URL_PATTERNS = ['http://*/*', 'https://*/*', 'ws://*/*', 'wss://*/*', 'ftp://*/*'];

/**
 * The app needs no camera, microphone, notification, clipboard-read, USB, serial or HID access, and loads nothing
 * from the network: every permission request and check is denied and every remote request cancelled. (Model
 * downloads from the Hub run in the service, in Node, not in the page.)
 */
export const hardenSession = (session: HardenableSession, log: RefusalLog = () => {}): void => {
  session.setPermissionRequestHandler((_contents, permission, callback) => {
    log({ what: 'permission', detail: permission });
    callback(false);
  });
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
  session.webRequest.onBeforeRequest({ urls: REMOTE_URL_PATTERNS }, (details, callback) => {
    log({ what: 'request', detail: details.url });
    callback({ cancel: true });
  });
};

/** The frame of an IPC message, as Electron reports it (event.senderFrame; null once it navigated or closed). */
export interface SenderFrame {
  readonly url: string;
  readonly parent: unknown;
}

/** Only the app's own top-level page may call the API: never a subframe, and never a page from elsewhere. */
export const isTrustedFrame = (frame: SenderFrame | null | undefined): boolean => {
  return !!frame && !frame.parent && isAppUrl(frame.url);
};
