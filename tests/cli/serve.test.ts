// `peft-studio serve` as a user starts it: the status page, the non-loopback refusal, the token check, the Origin
// check, a request over the socket, and a clean stop on SIGTERM.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { connectApi } from '../service/api-ws-client.ts';

interface Listening {
  readonly url: string;
  readonly api: string;
  readonly port: number;
}

const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

/** Starts `serve --json` on a free port and waits for its listening line. */
const serve = async (...args: string[]): Promise<{ child: ChildProcess; at: Listening }> => {
  const db = join(mkdtempSync(join(tmpdir(), 'peft-serve-')), 'history.db');
  const child = spawn(process.execPath, ['bin/peft-studio.mjs', 'serve', '--json', '--db', db, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
  });
  return { child, at: JSON.parse(first) as Listening };
};

const exitOf = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

describe('peft-studio serve', () => {
  it('refuses a non-loopback host without a token, naming the fix', () => {
    const r = spawnSync(process.execPath, ['bin/peft-studio.mjs', 'serve', '--host', '0.0.0.0'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('0.0.0.0');
    expect(r.stderr).toContain('--token');
  });

  it('serves a status page and the API on loopback, and stops on SIGTERM', async () => {
    // A renderer folder that was never built: / says how to build it (the built one is the e2e test's).
    const unbuilt = join(mkdtempSync(join(tmpdir(), 'peft-serve-')), 'renderer');
    const { child, at } = await serve('--renderer', unbuilt);
    expect(at.url).toBe(`http://127.0.0.1:${at.port}/`);
    const page = await fetch(at.url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('npm run build:renderer');
    expect(html).toContain(unbuilt);
    expect(html).toContain(at.api);

    const client = await connectApi(at.api);
    expect(await client.request('1', 'runs.list', {})).toEqual({ events: [], result: [] });
    const bad = await client.request('2', 'datasets.inspect', { path: '' });
    expect(bad.error).toMatchObject({ code: 'bad-request', field: 'params.path' });
    client.close();

    // A web page in the user's browser would send its own Origin: it must not drive the engine.
    await expect(connectApi(at.api, { Origin: 'https://evil.example' })).rejects.toThrow(/403/);

    const exited = exitOf(child);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('with a token, every connection must present it', async () => {
    const { at } = await serve('--token', 's3cret');
    await expect(connectApi(at.api)).rejects.toThrow(/401/);
    await expect(connectApi(`${at.api}?token=wrong`)).rejects.toThrow(/401/);
    const byQuery = await connectApi(`${at.api}?token=s3cret`);
    expect((await byQuery.request('q', 'runs.list')).result).toEqual([]);
    byQuery.close();
    const byHeader = await connectApi(at.api, { Authorization: 'Bearer s3cret' });
    expect((await byHeader.request('h', 'sweeps.list')).result).toEqual([]);
    byHeader.close();
  });
});
