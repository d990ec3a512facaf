import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  downloadFile,
  downloadRepo,
  HubError,
  resolveCached,
  type DownloadProgress,
} from '../../../main/models/hub/download.ts';
import {
  gitBlobSha1,
  PRIVATE_REPO,
  PUBLIC_REPO,
  RENAMED_REPO,
  SHARDED_REPO,
  sha256Hex,
  startFakeHub,
  VALID_TOKEN,
  type FakeHub,
} from './fake-hub.ts';

let hub: FakeHub;
let tmp: string;
let cacheDir: string;
/** An endpoint where nothing listens: "the Hub is unreachable". */
let deadEndpoint: string;

beforeAll(async () => {
  hub = await startFakeHub();
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  deadEndpoint = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});
afterAll(async () => {
  await hub.close();
});
beforeEach(async () => {
  hub.reset();
  tmp = await mkdtemp(join(tmpdir(), 'hub-dl-'));
  cacheDir = join(tmp, 'hub-cache');
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(tmp, { recursive: true, force: true });
});

/** Hermetic settings: our cache, the fake Hub, and an env without tokens or offline flags. */
const online = () => ({ cacheDir, endpoint: hub.endpoint, env: { HF_HOME: join(tmp, 'hf-home') } });
const repoFile = (repo: string, path: string): Buffer => {
  const file = hub.repos.get(repo)?.files.get(path);
  if (!file) throw new Error(`fake hub has no ${repo}/${path}`);
  return file.content;
};
const commitOf = (repo: string): string => hub.repos.get(repo)?.commit ?? '';
const repoDir = (repo: string): string => join(cacheDir, `models--${repo.replace('/', '--')}`);
const bodyGets = () => hub.log.filter((r) => r.method === 'GET');
const incompleteOf = (repo: string, path: string) =>
  join(repoDir(repo), 'blobs', `${sha256Hex(repoFile(repo, path))}.incomplete`);

/** Byte equality by hash: toEqual on 300 KB Buffers walks every element (seconds). */
const expectBytes = (actual: Buffer, expected: Buffer): void => {
  expect(actual.length).toBe(expected.length);
  expect(sha256Hex(actual)).toBe(sha256Hex(expected));
};

async function rejection(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

describe('downloadFile: cache layout', () => {
  it('lays out blobs, snapshot symlinks and refs/main exactly as huggingface_hub does', async () => {
    const commit = commitOf(PUBLIC_REPO);
    const weights = repoFile(PUBLIC_REPO, 'model.safetensors');
    const config = repoFile(PUBLIC_REPO, 'config.json');

    const configPath = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'config.json' });
    const weightsPath = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    const notesPath = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'extra/notes.txt' });

    const dir = repoDir(PUBLIC_REPO);
    expect(configPath).toBe(join(dir, 'snapshots', commit, 'config.json'));
    expect(weightsPath).toBe(join(dir, 'snapshots', commit, 'model.safetensors'));
    expect(notesPath).toBe(join(dir, 'snapshots', commit, 'extra', 'notes.txt'));
    // Regular files are named by their git sha1, LFS files by X-Linked-Etag (the sha256), not the pointer's ETag.
    expect(await readlink(configPath)).toBe(`../../blobs/${gitBlobSha1(config)}`);
    expect(await readlink(weightsPath)).toBe(`../../blobs/${sha256Hex(weights)}`);
    expect(await readlink(notesPath)).toBe(`../../../blobs/${gitBlobSha1(repoFile(PUBLIC_REPO, 'extra/notes.txt'))}`);
    expect((await lstat(weightsPath)).isSymbolicLink()).toBe(true);
    expectBytes(await readFile(weightsPath), weights);
    expectBytes(await readFile(configPath), config);
    expect(await readFile(join(dir, 'refs', 'main'), 'utf8')).toBe(commit); // no trailing newline
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'refs', 'snapshots']);
    expect((await readdir(join(dir, 'blobs'))).some((f) => f.endsWith('.incomplete'))).toBe(false);
    // The LFS bytes came from the CDN path the 302 pointed at.
    expect(bodyGets().map((r) => r.path)).toContain(`/cdn/${sha256Hex(weights)}`);
  });

  it('answers a second call from the cache: a HEAD for the commit, no GET for the body', async () => {
    const first = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    hub.log.length = 0;
    const second = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    expect(second).toBe(first);
    expect(bodyGets()).toEqual([]);
    expect(hub.log.length).toBeGreaterThan(0);
    expect(hub.log.every((r) => r.method === 'HEAD')).toBe(true); // the resolve URL, and its relative redirect

    // A commit-hash revision that is cached needs no request at all.
    hub.log.length = 0;
    const byCommit = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors', revision: commitOf(PUBLIC_REPO) });
    expect(byCommit).toBe(first);
    expect(hub.log).toEqual([]);
  });

  it('reports progress monotonically, ending at the file size', async () => {
    const events: DownloadProgress[] = [];
    await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors', onProgress: (p) => events.push(p) });
    const size = repoFile(PUBLIC_REPO, 'model.safetensors').length;
    expect(events.length).toBeGreaterThan(2);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.received).toBeGreaterThanOrEqual(events[i - 1]!.received);
    }
    expect(events.every((e) => e.file === 'model.safetensors' && e.total === size)).toBe(true);
    expect(events.at(-1)?.received).toBe(size);
  });
});

describe('downloadFile: resume and integrity', () => {
  it('keeps the .incomplete blob of an interrupted transfer and resumes it with Range: bytes=N-', async () => {
    const weights = repoFile(PUBLIC_REPO, 'model.safetensors');
    hub.switches.cutNextBodyAfter = 100_000;
    const err = await rejection(downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' }));
    expect(err.code).toBe('interrupted');
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toContain('resume');
    const partial = incompleteOf(PUBLIC_REPO, 'model.safetensors');
    expect(err.partialPath).toBe(partial);
    const kept = (await stat(partial)).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(100_000);
    expect(await resolveCached({ repo: PUBLIC_REPO, filename: 'model.safetensors', cacheDir })).toBeNull();

    hub.log.length = 0;
    const events: DownloadProgress[] = [];
    const path = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors', onProgress: (p) => events.push(p) });
    const resumed = bodyGets();
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.range).toBe(`bytes=${kept}-`);
    expect(resumed[0]?.status).toBe(206);
    expect(events[0]?.received).toBe(kept);
    expectBytes(await readFile(path), weights);
    await expect(stat(partial)).rejects.toThrow();
  });

  it('cancels through the AbortSignal, keeping the partial blob for the next call', async () => {
    const controller = new AbortController();
    const err = await rejection(
      downloadFile({
        ...online(),
        repo: PUBLIC_REPO,
        filename: 'model.safetensors',
        signal: controller.signal,
        onProgress: (p) => {
          if (p.received > 0) controller.abort();
        },
      }),
    );
    expect(err.code).toBe('aborted');
    const kept = (await stat(incompleteOf(PUBLIC_REPO, 'model.safetensors'))).size;
    expect(kept).toBeGreaterThan(0);
    hub.log.length = 0;
    const path = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    expect(bodyGets()[0]?.range).toBe(`bytes=${kept}-`);
    expectBytes(await readFile(path), repoFile(PUBLIC_REPO, 'model.safetensors'));
  });

  it('starts over cleanly when the server ignores Range and answers 200', async () => {
    const weights = repoFile(PUBLIC_REPO, 'model.safetensors');
    const partial = incompleteOf(PUBLIC_REPO, 'model.safetensors');
    await mkdir(join(repoDir(PUBLIC_REPO), 'blobs'), { recursive: true });
    // Garbage, not a prefix: appending the full body to it would fail the sha256 check.
    await writeFile(partial, Buffer.alloc(5000, 0xab));
    hub.switches.ignoreRange = true;
    const path = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    expect(bodyGets()[0]?.range).toBe('bytes=5000-');
    expect(bodyGets()[0]?.status).toBe(200);
    expectBytes(await readFile(path), weights);
  });

  it('refuses bytes whose sha256 is not the LFS ETag and caches nothing', async () => {
    hub.switches.corruptLfs = true;
    const err = await rejection(downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'model.safetensors' }));
    expect(err.code).toBe('checksum-mismatch');
    expect(err.message).toContain(sha256Hex(repoFile(PUBLIC_REPO, 'model.safetensors')));
    const blobs = await readdir(join(repoDir(PUBLIC_REPO), 'blobs'));
    expect(blobs).toEqual([]); // neither the blob nor a poisoned .incomplete
    expect(await resolveCached({ repo: PUBLIC_REPO, filename: 'model.safetensors', cacheDir })).toBeNull();
  });
});

describe('offline', () => {
  it('resolves from the cache with HF_HUB_OFFLINE=1 and no server', async () => {
    const cached = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'config.json' });
    hub.log.length = 0;
    const env = { HF_HOME: join(tmp, 'hf-home'), HF_HUB_OFFLINE: '1' };
    expect(await downloadFile({ cacheDir, endpoint: deadEndpoint, env, repo: PUBLIC_REPO, filename: 'config.json' })).toBe(cached);
    expect(await resolveCached({ repo: PUBLIC_REPO, filename: 'config.json', cacheDir })).toBe(cached);
    expect(await resolveCached({ repo: PUBLIC_REPO, filename: 'config.json', cacheDir, revision: commitOf(PUBLIC_REPO) })).toBe(cached);
    expect(await resolveCached({ repo: PUBLIC_REPO, filename: 'config.json', cacheDir, revision: 'v2' })).toBeNull();
    expect(hub.log).toEqual([]);

    // The same through the real process environment: HF_HUB_CACHE + HF_HUB_OFFLINE + HF_ENDPOINT.
    vi.stubEnv('HF_HUB_CACHE', cacheDir);
    vi.stubEnv('HF_HUB_OFFLINE', '1');
    vi.stubEnv('HF_ENDPOINT', deadEndpoint);
    expect(await downloadFile({ repo: PUBLIC_REPO, filename: 'config.json' })).toBe(cached);
    expect(await downloadRepo({ repo: PUBLIC_REPO })).toBe(join(repoDir(PUBLIC_REPO), 'snapshots', commitOf(PUBLIC_REPO)));
  });

  it('says which repo and file are missing, that the machine is offline, and where the cache is', async () => {
    const env = { HF_HOME: join(tmp, 'hf-home'), HF_HUB_OFFLINE: 'true' };
    const err = await rejection(downloadFile({ cacheDir, endpoint: deadEndpoint, env, repo: PUBLIC_REPO, filename: 'tokenizer.json' }));
    expect(err.code).toBe('offline');
    expect(err.message).toContain(PUBLIC_REPO);
    expect(err.message).toContain('tokenizer.json');
    expect(err.message).toContain('HF_HUB_OFFLINE');
    expect(err.message).toContain(cacheDir);
    expect(err.cacheDir).toBe(cacheDir);
  });

  it('falls back to the cache when the Hub cannot be reached, and says so when the file is not there', async () => {
    const cached = await downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'config.json' });
    const unreachable = { ...online(), endpoint: deadEndpoint };
    expect(await downloadFile({ ...unreachable, repo: PUBLIC_REPO, filename: 'config.json' })).toBe(cached);
    const err = await rejection(downloadFile({ ...unreachable, repo: PUBLIC_REPO, filename: 'tokenizer.json' }));
    expect(err.code).toBe('offline');
    expect(err.message).toContain('could not be reached');
    expect(err.message).toContain(deadEndpoint);
    expect(err.message).toContain('tokenizer.json');
  });
});

describe('Hub errors', () => {
  it('404: names the missing file, or the missing repo', async () => {
    const noFile = await rejection(downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'nope.bin' }));
    expect(noFile.code).toBe('file-not-found');
    expect(noFile.status).toBe(404);
    expect(noFile.message).toContain('nope.bin');
    expect(noFile.message).toContain(PUBLIC_REPO);

    const noRepo = await rejection(downloadFile({ ...online(), repo: 'test-org/missing', filename: 'config.json' }));
    expect(noRepo.code).toBe('repo-not-found');
    expect(noRepo.message).toContain('test-org/missing');

    const noRev = await rejection(downloadFile({ ...online(), repo: PUBLIC_REPO, filename: 'config.json', revision: 'v9' }));
    expect(noRev.code).toBe('revision-not-found');
    expect(noRev.message).toContain('v9');
  });

  it('401: a private repo without a token says to set HF_TOKEN; with HF_TOKEN it downloads', async () => {
    const err = await rejection(downloadFile({ ...online(), repo: PRIVATE_REPO, filename: 'config.json' }));
    expect(err.code).toBe('unauthorized');
    expect(err.status).toBe(401);
    expect(err.message).toContain(PRIVATE_REPO);
    expect(err.message).toContain('HF_TOKEN');

    const wrong = await rejection(downloadFile({ ...online(), token: 'hf_wrong', repo: PRIVATE_REPO, filename: 'config.json' }));
    expect(wrong.message).toContain('A token was sent');

    hub.log.length = 0;
    hub.switches.cdn = 'absolute';
    const env = { HF_HOME: join(tmp, 'hf-home'), HF_TOKEN: VALID_TOKEN };
    const path = await downloadFile({ cacheDir, endpoint: hub.endpoint, env, repo: PRIVATE_REPO, filename: 'model.safetensors' });
    expectBytes(await readFile(path), repoFile(PRIVATE_REPO, 'model.safetensors'));
    // Bearer token on the Hub, never forwarded to the (other-origin) CDN.
    expect(hub.log.filter((r) => r.server === 'hub').every((r) => r.authorization === `Bearer ${VALID_TOKEN}`)).toBe(true);
    const cdn = hub.log.filter((r) => r.server === 'cdn');
    expect(cdn).toHaveLength(1);
    expect(cdn[0]?.authorization).toBeUndefined();
  });

  it('refuses repo ids and filenames that would leave the cache folder', async () => {
    const err = await rejection(downloadFile({ ...online(), repo: PUBLIC_REPO, filename: '../../etc/passwd' }));
    expect(err.code).toBe('invalid-argument');
    expect(hub.log).toEqual([]);
  });
});

describe('redirects', () => {
  it('follows relative Locations (a renamed repo, a same-origin CDN path) and absolute ones', async () => {
    const weights = repoFile(PUBLIC_REPO, 'model.safetensors');
    const viaRename = await downloadFile({ ...online(), repo: RENAMED_REPO, filename: 'model.safetensors' });
    expectBytes(await readFile(viaRename), weights);
    expect(hub.log.some((r) => r.status === 307)).toBe(true);
    expect(hub.log.some((r) => r.server === 'hub' && r.path.startsWith('/cdn/') && r.method === 'GET')).toBe(true);

    hub.reset();
    hub.switches.cdn = 'absolute';
    const viaCdn = await downloadFile({ ...online(), cacheDir: join(tmp, 'other-cache'), repo: PUBLIC_REPO, filename: 'model.safetensors' });
    expectBytes(await readFile(viaCdn), weights);
    expect(hub.log.filter((r) => r.server === 'cdn').map((r) => r.method)).toEqual(['GET']);
  });
});

describe('downloadRepo', () => {
  it('lists files through the revision API and fetches those matching allowPatterns', async () => {
    const snapshot = await downloadRepo({ ...online(), repo: PUBLIC_REPO, allowPatterns: ['*.json'] });
    expect(snapshot).toBe(join(repoDir(PUBLIC_REPO), 'snapshots', commitOf(PUBLIC_REPO)));
    expect(hub.log[0]?.path).toBe(`/api/models/${PUBLIC_REPO}/revision/main`);
    expect((await readdir(snapshot)).sort()).toEqual(['config.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(await readFile(join(repoDir(PUBLIC_REPO), 'refs', 'main'), 'utf8')).toBe(commitOf(PUBLIC_REPO));
    // Files are fetched by commit hash, so a push mid-download cannot mix versions.
    const resolves = hub.log.filter((r) => r.path.includes('/resolve/'));
    expect(resolves.every((r) => r.path.includes(`/resolve/${commitOf(PUBLIC_REPO)}/`))).toBe(true);
  });

  it('by default fetches what a model needs: side files and weights, not READMEs or other folders', async () => {
    const snapshot = await downloadRepo({ ...online(), repo: PUBLIC_REPO });
    expect((await readdir(snapshot)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  });

  it('by default fetches exactly the shards the safetensors index names (not consolidated.safetensors)', async () => {
    const events: DownloadProgress[] = [];
    const snapshot = await downloadRepo({ ...online(), repo: SHARDED_REPO, onProgress: (p) => events.push(p) });
    expect((await readdir(snapshot)).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      expectBytes(await readFile(join(snapshot, f)), repoFile(SHARDED_REPO, f));
      expect(events.filter((e) => e.file === f).at(-1)?.received).toBe(repoFile(SHARDED_REPO, f).length);
    }
  });

  it('offline and never downloaded: a clear error naming the repo and the cache', async () => {
    const err = await rejection(downloadRepo({ ...online(), offline: true, repo: SHARDED_REPO }));
    expect(err.code).toBe('offline');
    expect(err.message).toContain(SHARDED_REPO);
    expect(err.message).toContain(cacheDir);
  });
});
