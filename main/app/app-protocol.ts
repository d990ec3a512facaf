// The renderer's files (dist/renderer) served over a privileged custom scheme, app://app/, rather than file://.
// Why: a file:// page's origin is the whole disk ('self' in its CSP means every file://, and a file:// load sends
// no headers, so the CSP could only come from the page's own <meta>); app:// is a standard, secure origin of its
// own that serves exactly the files of dist/renderer (no path leaves it), every response carries the CSP header,
// and IPC can check that a message comes from app://app (security.ts isTrustedFrame).
import { readFile as readFileFromDisk } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { APP_SCHEME, isAppUrl } from './origin.ts';
import { CONTENT_SECURITY_POLICY } from './security.ts';

/**
 * For protocol.registerSchemesAsPrivileged, before the app is ready: standard (relative URLs and an origin, which
 * Vite's base './' needs), secure (like https: the page is a secure context), fetch (ES module scripts load
 * through it). Not bypassCSP, not corsEnabled, no service workers.
 */
export const APP_SCHEME_PRIVILEGES = {
  scheme: APP_SCHEME,
  privileges: { standard: true, secure: true, supportFetchAPI: true, stream: false, bypassCSP: false, corsEnabled: false, allowServiceWorkers: false },
} as const;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

export interface RendererResponderOptions {
  /** The built renderer (dist/renderer), absolute. */
  readonly root: string;
  /** Default fs/promises readFile (in Electron it reads inside app.asar too). */
  readonly readFile?: (path: string) => Promise<Uint8Array>;
}

const securityHeaders = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const plain = (status: number, text: string): Response =>
  new Response(text, { status, headers: { ...securityHeaders, 'Content-Type': 'text/plain; charset=utf-8' } });

/** The handler for protocol.handle(APP_SCHEME, …): a request for app://app/<path> → that file of the renderer. */
export const rendererResponder = (o: RendererResponderOptions) => {
  const root = resolve(o.root);
  const readFile = o.readFile ?? readFileFromDisk;
  return async (request: Request): Promise<Response> => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return plain(405, `${request.method} is not served`);
    if (!isAppUrl(request.url)) return plain(404, `not an app page: ${request.url}`);
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(request.url).pathname);
    } catch {
      return plain(400, `malformed path in ${request.url}`);
    }
    if (pathname === '/' || pathname === '') pathname = '/index.html';
    const file = resolve(root, `.${pathname}`);
    // URL parsing already folds '..', but a decoded %2e%2e or a backslash must not climb out either.
    if (!file.startsWith(root + sep) || pathname.includes('\0')) return plain(404, `not found: ${pathname}`);
    let body: Uint8Array;
    try {
      body = await readFile(file);
    } catch {
      return plain(404, `not found: ${pathname}`);
    }
    const headers = { ...securityHeaders, 'Content-Type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream' };
    return new Response(request.method === 'HEAD' ? null : (body as ConstructorParameters<typeof Response>[0]), { status: 200, headers });
  };
};
