// `serve` hands out the built renderer and nothing else: its files with the strict CSP, never a file outside its
// folder (.., encoded .., absolute paths, dotfiles, symlinks out), and a page that says how to build it when missing.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApi, type RunningServer } from '../../main/server/ws-server.ts';
import { CONTENT_SECURITY_POLICY } from '../../main/app/security.ts';
import { RENDERER_CSP } from '../../main/server/static-files.ts';
import { RENDERER_META_CSP } from '../../main/service/renderer-csp.ts';
import { openStore, type Store } from '../../main/store/index.ts';

/** A raw GET (fetch would normalise the path before sending it). */
const get = (port: number, path: string) =>
  new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });

describe('serve: the built renderer', () => {
  let dir: string;
  let store: Store;
  let served: RunningServer;
  let unbuilt: RunningServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'peft-static-'));
    const renderer = join(dir, 'renderer');
    mkdirSync(join(renderer, 'assets'), { recursive: true });
    writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>PEFT Studio</title>');
    writeFileSync(join(renderer, 'assets', 'app-1234.js'), 'console.log(1)');
    writeFileSync(join(renderer, '.env'), 'SECRET=1');
    writeFileSync(join(dir, 'secret.txt'), 'secret');
    symlinkSync(join(dir, 'secret.txt'), join(renderer, 'assets', 'link.txt'));
    store = openStore(join(dir, 'studio.db'));
    served = await serveApi({ store, rendererDir: renderer });
    unbuilt = await serveApi({ store, rendererDir: join(dir, 'missing') });
  });
  afterAll(async () => {
    await served.close();
    await unbuilt.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves index.html at / and the assets, with the CSP', async () => {
    for (const path of ['/', '/?token=abc', '/index.html']) {
      const r = await get(served.port, path);
      expect(r.status, path).toBe(200);
      expect(r.body).toContain('<title>PEFT Studio</title>');
      expect(r.headers['content-security-policy']).toBe(RENDERER_CSP);
      expect(r.headers['cache-control']).toBe('no-store');
    }
    const js = await get(served.port, '/assets/app-1234.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(RENDERER_CSP).toContain("connect-src 'self'");
    expect(RENDERER_CSP).not.toMatch(/unsafe-eval|script-src[^;]*unsafe-inline/);
  });

  it('renderer/index.html carries the same policy in its <meta> (less frame-ancestors, which a meta cannot set)', () => {
    const html = readFileSync(join(import.meta.dirname, '..', '..', 'renderer', 'index.html'), 'utf8');
    const meta = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1];
    expect(meta).toBe(RENDERER_META_CSP);
    expect(CONTENT_SECURITY_POLICY).toBe(RENDERER_CSP);
  });

  it('never serves a file outside the renderer folder, nor a dotfile', async () => {
    for (const path of ['/../secret.txt', '/assets/../../secret.txt', '/%2e%2e/secret.txt', '/assets/%2e%2e%2f%2e%2e%2fsecret.txt', '/.env', '/assets/link.txt', `/${join(dir, 'secret.txt')}`, '/%00']) {
      const r = await get(served.port, path);
      expect(r.status, path).toBe(404);
      expect(r.body, path).not.toContain('secret');
    }
  });

  it('says how to build the renderer when it is missing', async () => {
    const r = await get(unbuilt.port, '/');
    expect(r.status).toBe(200);
    expect(r.body).toContain('npm run build:renderer');
  });
});
