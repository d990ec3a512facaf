/**
 * A fake Hugging Face Hub on 127.0.0.1 (random ports), speaking the subset of the protocol the downloader and
 * huggingface_hub use:
 *
 *   HEAD/GET /{repo}/resolve/{revision}/{path}   regular file: 200, ETag = git blob sha1, X-Repo-Commit
 *                                                LFS file: 302 → /cdn/{sha256}, X-Linked-Etag = sha256,
 *                                                X-Linked-Size, ETag = the pointer file's git sha1
 *   HEAD/GET /cdn/{sha256}                       the LFS bytes (also on a second server: the "absolute" CDN)
 *   GET      /api/models/{repo}/revision/{rev}   { sha, siblings: [{ rfilename }] }
 *
 * with Range (206 / 416), X-Error-Code on 401/404, a private repo that needs a token, a renamed repo (relative
 * 307), and switches to ignore Range, cut the next body after N bytes, or corrupt LFS bytes. Every request is
 * logged for assertions.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '../../helpers/random.ts';

export const PUBLIC_REPO = 'test-org/tiny-model';
export const SHARDED_REPO = 'test-org/sharded-model';
export const PRIVATE_REPO = 'test-org/private-model';
/** Answers with a relative 307 to PUBLIC_REPO, as the Hub does for a renamed repo. */
export const RENAMED_REPO = 'test-org/old-name';
export const VALID_TOKEN = 'hf_fake_token_for_tests';

export interface FakeFile {
  content: Buffer;
  lfs: boolean;
}

interface FakeRepo {
  commit: string;
  files: Map<string, FakeFile>;
  private: boolean;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

export interface FakeHubSwitches {
  /** Where LFS redirects point: `/cdn/...` on the hub itself, or an absolute URL on the second (CDN) server. */
  cdn: 'relative' | 'absolute';
  /** Answer Range requests with 200 and the whole file, as some proxies do. */
  ignoreRange: boolean;
  /** Send only this many bytes of the next file body, then drop the connection (used once). */
  cutNextBodyAfter: number | null;
  /** Flip a byte in every LFS body (the sha256 then no longer matches). */
  corruptLfs: boolean;
}

export interface FakeHub {
  endpoint: string;
  cdnOrigin: string;
  repos: ReadonlyMap<string, FakeRepo>;
  log: LoggedRequest[];
  switches: FakeHubSwitches;
  /** Clears the log and resets the switches. */
  reset(): void;
  close(): Promise<void>;
}

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** The git object id of a file: what the Hub sends as ETag for files stored in git. */
export const gitBlobSha1 = (b: Buffer): string =>
  createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const fakeCommit = (name: string): string => createHash('sha1').update(`commit:${name}`).digest('hex');

const randomBytes = (n: number, seed: number): Buffer => {
  const rnd = seededRandom(seed);
  return Buffer.from(Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256)));
};
const text = (s: string): FakeFile => ({ content: Buffer.from(s), lfs: false });
const json = (v: unknown): FakeFile => text(JSON.stringify(v, null, 2));
const lfs = (content: Buffer): FakeFile => ({ content, lfs: true });

function buildRepos(): Map<string, FakeRepo> {
  const config = json({ architectures: ['LlamaForCausalLM'], hidden_size: 8, num_hidden_layers: 1 });
  const shard1 = randomBytes(40_000, 11);
  const shard2 = randomBytes(30_000, 12);
  return new Map<string, FakeRepo>([
    [PUBLIC_REPO, {
      commit: fakeCommit(PUBLIC_REPO),
      private: false,
      files: new Map([
        ['config.json', config],
        ['tokenizer.json', json({ version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1 } } })],
        ['tokenizer_config.json', json({ chat_template: '{{ messages }}' })],
        ['README.md', text('# tiny model\n')],
        ['extra/notes.txt', text('a file one folder down\n')],
        ['model.safetensors', lfs(randomBytes(300_000, 7))],
      ]),
    }],
    [SHARDED_REPO, {
      commit: fakeCommit(SHARDED_REPO),
      private: false,
      files: new Map([
        ['config.json', config],
        ['model.safetensors.index.json', json({
          metadata: { total_size: shard1.length + shard2.length },
          weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' },
        })],
        ['model-00001-of-00002.safetensors', lfs(shard1)],
        ['model-00002-of-00002.safetensors', lfs(shard2)],
        // The same weights in another layout (as Mistral repos ship them): the default selection must skip it.
        ['consolidated.safetensors', lfs(Buffer.concat([shard1, shard2]))],
      ]),
    }],
    [PRIVATE_REPO, {
      commit: fakeCommit(PRIVATE_REPO),
      private: true,
      files: new Map([['config.json', config], ['model.safetensors', lfs(randomBytes(20_000, 9))]]),
    }],
  ]);
}

const defaultSwitches = (): FakeHubSwitches => ({ cdn: 'relative', ignoreRange: false, cutNextBodyAfter: null, corruptLfs: false });

const listen = (server: Server): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

export async function startFakeHub(): Promise<FakeHub> {
  const repos = buildRepos();
  const lfsBySha = new Map<string, Buffer>();
  for (const repo of repos.values()) {
    for (const f of repo.files.values()) if (f.lfs) lfsBySha.set(sha256Hex(f.content), f.content);
  }
  const hubServer = createServer();
  const cdnServer = createServer();
  const [hubPort, cdnPort] = await Promise.all([listen(hubServer), listen(cdnServer)]);
  const hub: FakeHub = {
    endpoint: `http://127.0.0.1:${hubPort}`,
    cdnOrigin: `http://127.0.0.1:${cdnPort}`,
    repos,
    log: [],
    switches: defaultSwitches(),
    reset() {
      hub.log.length = 0;
      hub.switches = defaultSwitches();
    },
    async close() {
      for (const s of [hubServer, cdnServer]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };

  const handle = (server: 'hub' | 'cdn') => (req: IncomingMessage, res: ServerResponse): void => {
    const entry: LoggedRequest = {
      server,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
    };
    hub.log.push(entry);
    const reply = (status: number, headers: Record<string, string | number>, body?: Buffer | string): void => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const path = decodeURIComponent(new URL(entry.path, 'http://x').pathname);

    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const bytes = lfsBySha.get(cdn[1] as string);
      if (!bytes) return reply(404, {}, 'no such blob');
      const served = Buffer.from(bytes);
      if (hub.switches.corruptLfs) served[0] = (served[0] as number) ^ 0xff;
      return sendBytes(served, {}, entry, req, res, hub.switches);
    }
    if (server === 'cdn') return reply(404, {}, 'the CDN only serves /cdn/');

    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoId = (api ?? resolve)?.[1];
    if (repoId === undefined) return reply(404, {}, 'not a Hub route');
    if (repoId === RENAMED_REPO) {
      return reply(307, { location: entry.path.replace(RENAMED_REPO, PUBLIC_REPO) }, 'Moved');
    }
    const repo = repos.get(repoId);
    if (!repo) return reply(404, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' });
    if (repo.private && req.headers.authorization !== `Bearer ${VALID_TOKEN}`) {
      // The real Hub does not reveal private repos to strangers: 401 with RepoNotFound.
      return reply(401, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Invalid username or password.' });
    }
    const revision = (api ?? resolve)?.[2] as string;
    if (revision !== 'main' && revision !== repo.commit) {
      return reply(404, { 'x-error-code': 'RevisionNotFound', 'x-error-message': `Invalid rev id: ${revision}` });
    }
    if (api) {
      const siblings = [...repo.files.keys()].map((rfilename) => ({ rfilename }));
      return reply(200, { 'content-type': 'application/json' }, JSON.stringify({ id: repoId, sha: repo.commit, siblings }));
    }
    const filename = resolve?.[3] as string;
    const file = repo.files.get(filename);
    const commitHeader = { 'x-repo-commit': repo.commit };
    if (!file) {
      return reply(404, { ...commitHeader, 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' });
    }
    if (file.lfs) {
      const sha = sha256Hex(file.content);
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${file.content.length}\n`;
      const location = hub.switches.cdn === 'relative' ? `/cdn/${sha}` : `${hub.cdnOrigin}/cdn/${sha}`;
      const body = `Found. Redirecting to ${location}`;
      return reply(302, {
        ...commitHeader,
        location,
        etag: `"${gitBlobSha1(Buffer.from(pointer))}"`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': file.content.length,
        'content-length': Buffer.byteLength(body),
      }, body);
    }
    return sendBytes(file.content, { ...commitHeader, etag: `"${gitBlobSha1(file.content)}"` }, entry, req, res, hub.switches);
  };
  hubServer.on('request', handle('hub'));
  cdnServer.on('request', handle('cdn'));
  return hub;
}

/** Serves bytes with Range support and the cut switch; writes in 16 KiB chunks so clients see several reads. */
function sendBytes(
  bytes: Buffer,
  headers: Record<string, string | number>,
  entry: LoggedRequest,
  req: IncomingMessage,
  res: ServerResponse,
  switches: FakeHubSwitches,
): void {
  let start = 0;
  let status = 200;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && !switches.ignoreRange) {
    start = Number(range[1]);
    if (start >= bytes.length) {
      entry.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
      res.end();
      return;
    }
    status = 206;
    headers = { ...headers, 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` };
  }
  const body = bytes.subarray(start);
  entry.status = status;
  res.writeHead(status, { ...headers, 'accept-ranges': 'bytes', 'content-length': body.length });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const cut = switches.cutNextBodyAfter;
  if (cut !== null) switches.cutNextBodyAfter = null;
  const limit = cut === null ? body.length : Math.min(cut, body.length);
  const CHUNK = 16 * 1024;
  let offset = 0;
  const pump = (): void => {
    while (offset < limit) {
      const chunk = body.subarray(offset, Math.min(offset + CHUNK, limit));
      offset += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (cut === null) res.end();
    // Let the sent bytes reach the client, then drop the connection mid-body.
    else res.write(Buffer.alloc(0), () => setTimeout(() => res.socket?.destroy(), 30));
  };
  pump();
}
