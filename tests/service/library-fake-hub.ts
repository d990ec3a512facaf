// A Hugging Face Hub on 127.0.0.1 serving real model folders (the tiny test models), for models.download: the
// revision API and resolve URLs as tests/models/hub/fake-hub.ts speaks them, every file as a plain (non-LFS) file
// whose ETag is its sha256 (so the downloader verifies it). `stall` makes bodies stop after some bytes and hang,
// so a test can cancel a download that is surely in flight.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface ModelHub {
  readonly endpoint: string;
  /** The commit each repo's `main` resolves to. */
  commitOf(repo: string): string;
  /** Requests served (method, path), for tests that check what was fetched. */
  readonly log: { method: string; path: string }[];
  /** Bodies larger than this stop after it and hang until the client goes away; null: serve whole files. */
  stallAfter: number | null;
  /** Cuts every open connection (a stalled body ends as a broken transfer). */
  dropConnections(): void;
  close(): Promise<void>;
}

const sha = (algorithm: string, data: Buffer | string): string => createHash(algorithm).update(data).digest('hex');

/** repos: repo id → the folder whose top-level files it holds. */
export const startModelHub = async (repos: Readonly<Record<string, string>>): Promise<ModelHub> => {
  const files = new Map<string, Map<string, Buffer>>();
  const filesOf = (repo: string): Map<string, Buffer> | undefined => {
    const dir = repos[repo];
    if (dir === undefined) return undefined;
    if (!files.has(repo)) {
      const names = readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile());
      files.set(repo, new Map(names.map((f) => [f, readFileSync(join(dir, f))])));
    }
    return files.get(repo);
  };
  const commitOf = (repo: string) => sha('sha1', `commit:${repo}`);
  const server = createServer();
  const hub: ModelHub = {
    endpoint: '',
    commitOf,
    log: [],
    stallAfter: null,
    dropConnections: () => server.closeAllConnections(),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    hub.log.push({ method: req.method ?? 'GET', path });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repo = (api ?? resolve)?.[1];
    const served = repo === undefined ? undefined : filesOf(repo);
    if (!served) {
      res.writeHead(404, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' }).end();
      return;
    }
    const revision = (api ?? resolve)![2]!;
    if (revision !== 'main' && revision !== commitOf(repo!)) {
      res.writeHead(404, { 'x-error-code': 'RevisionNotFound', 'x-error-message': `Invalid rev id: ${revision}` }).end();
      return;
    }
    if (api) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: repo, sha: commitOf(repo!), siblings: [...served.keys()].map((rfilename) => ({ rfilename })) }));
      return;
    }
    const content = served.get(resolve![3]!);
    if (!content) {
      res.writeHead(404, { 'x-repo-commit': commitOf(repo!), 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' }).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const body = content.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'x-repo-commit': commitOf(repo!),
      etag: `"${sha('sha256', content)}"`,
      'accept-ranges': 'bytes',
      'content-length': body.length,
      ...(range ? { 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (hub.stallAfter !== null && body.length > hub.stallAfter) {
      res.write(body.subarray(0, hub.stallAfter)); // …and nothing more, until the client gives up
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return Object.assign(hub, { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
};
