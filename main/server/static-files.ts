// The built renderer's files over HTTP for `peft-studio serve`: GET/HEAD only, inside the renderer folder only (no
// traversal, no dotfiles, no symlinks out), with the same strict Content-Security-Policy the desktop shell sets, so
// the page can load its own scripts and talk to its own server's /api and nothing else.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { RENDERER_CSP } from '../service/renderer-csp.ts';

export { RENDERER_CSP };

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** The file under `root` a request path names, or undefined (outside root, hidden, missing). */
const resolveInside = (root: string, urlPath: string): string | undefined => {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const relative = normalize(decoded === '/' ? '/index.html' : decoded).replace(/^([/\\])+/, '');
  if (relative.split(/[/\\]/).some((part) => part === '..' || part.startsWith('.'))) return undefined;
  const file = join(root, relative);
  if (!existsSync(file) || !statSync(file).isFile()) return undefined;
  const realRoot = realpathSync(root);
  const real = realpathSync(file);
  return real.startsWith(realRoot + sep) ? real : undefined;
};

/** Answers a request for one of the renderer's files; false when it is not one (the caller answers then). */
export const serveStatic = (req: IncomingMessage, res: ServerResponse, root: string): boolean => {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (!existsSync(join(root, 'index.html'))) return false;
  const urlPath = (req.url ?? '/').split('?')[0]!;
  const file = resolveInside(root, urlPath);
  if (!file) return false;
  const type = TYPES[extname(file)] ?? 'application/octet-stream';
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Security-Policy': RENDERER_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // index.html names the hashed assets: never cache it; the assets themselves never change.
    'Cache-Control': file.endsWith('index.html') ? 'no-store' : 'public, max-age=31536000, immutable',
  });
  res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  return true;
};
