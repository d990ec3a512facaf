// app://app/ serves the built renderer's files, each with the CSP header, and nothing outside its folder.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { APP_SCHEME_PRIVILEGES, rendererResponder } from '../../main/app/app-protocol.ts';
import { APP_ENTRY_URL } from '../../main/app/origin.ts';
import { CONTENT_SECURITY_POLICY } from '../../main/app/security.ts';

const dir = mkdtempSync(join(tmpdir(), 'peft-app-protocol-'));
const root = join(dir, 'renderer');
mkdirSync(join(root, 'assets'), { recursive: true });
writeFileSync(join(root, 'index.html'), '<!doctype html><title>PEFT Studio</title>');
writeFileSync(join(root, 'assets', 'index-abc.js'), 'console.log(1)');
writeFileSync(join(root, 'assets', 'index-abc.css'), 'body{}');
// A file beside the renderer's folder: a request must never reach it.
writeFileSync(join(dir, 'secret.txt'), 'not for the page');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const respond = rendererResponder({ root });
const get = (url: string, method = 'GET') => respond(new Request(url, { method }));

describe('app:// responder', () => {
  it('serves the renderer’s files with their type and the CSP header', async () => {
    const page = await get(APP_ENTRY_URL);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await page.text()).toContain('<title>PEFT Studio</title>');
    const script = await get('app://app/assets/index-abc.js');
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await script.text()).toBe('console.log(1)');
    expect((await get('app://app/assets/index-abc.css')).headers.get('content-type')).toMatch(/^text\/css/);
    expect(await (await get('app://app/')).text()).toContain('PEFT Studio');
  });

  it('never serves a file outside the renderer’s folder', async () => {
    for (const url of [
      'app://app/../secret.txt',
      'app://app/%2e%2e/secret.txt',
      'app://app/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      'app://app/..%5csecret.txt',
      `app://app/${encodeURIComponent(join(dir, 'secret.txt'))}`,
    ]) {
      const response = await get(url);
      expect(response.status, url).toBe(404);
      expect(await response.text(), url).not.toContain('not for the page');
      expect(response.headers.get('content-security-policy'), url).toBe(CONTENT_SECURITY_POLICY);
    }
  });

  it('answers another host, a missing file, a bad escape and a POST with an error', async () => {
    expect((await get('app://evil/index.html')).status).toBe(404);
    expect((await get('app://app/nope.js')).status).toBe(404);
    expect((await get('app://app/%E0%A4%A')).status).toBe(400);
    expect((await get(APP_ENTRY_URL, 'POST')).status).toBe(405);
    const head = await get(APP_ENTRY_URL, 'HEAD');
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('registers app:// as a standard, secure scheme without CSP bypass', () => {
    expect(APP_SCHEME_PRIVILEGES).toMatchObject({ scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true, bypassCSP: false } });
  });
});
