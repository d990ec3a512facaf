/**
 * Hugging Face Hub downloads into the standard HF cache (shared with huggingface_hub / transformers), with
 * progress, resume, sha256 checks for LFS files, and offline resolution. See cache.ts for the layout, http.ts for
 * the protocol, transfer.ts for how bytes reach the disk.
 *
 * Behaviour follows huggingface_hub's hf_hub_download / snapshot_download:
 * - a commit-hash revision already in the cache is returned without any request;
 * - otherwise one HEAD finds the commit and the blob's ETag; a cached snapshot file is returned without a GET;
 * - offline (HF_HUB_OFFLINE, or the Hub unreachable) falls back to refs/{revision} → snapshot, and says so
 *   clearly, naming repo, file and cache folder, when the file is not there.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  blobPath,
  cachedCommit,
  checkArgs,
  DEFAULT_REVISION,
  existsFollowing,
  hubSettings,
  isCommitHash,
  isSafeComponent,
  linkSnapshot,
  repoCacheDir,
  resolveCached,
  snapshotPath,
  writeRef,
  type HubLocation,
  type HubSettings,
} from './cache.ts';
import { HubError, type RequestSubject } from './errors.ts';
import {
  badResponse,
  describeFailure,
  fetchFileMetadata,
  fetchRepoRevision,
  isNetworkFailure,
  resolveUrl,
  type FileMetadata,
  type HubRequest,
  type RepoRevision,
} from './http.ts';
import { defaultSelection, filterFiles, SAFETENSORS_INDEX, shardsFromIndex } from './patterns.ts';
import { transferBlob, type DownloadProgress } from './transfer.ts';

export type { DownloadProgress } from './transfer.ts';
export { HubError, type HubErrorCode } from './errors.ts';
export { resolveCached, hubCacheDir, repoFolderName } from './cache.ts';
export { DEFAULT_MODEL_PATTERNS } from './patterns.ts';

export interface DownloadFileOptions extends HubLocation {
  /** "org/name" (or a bare "name"). */
  repo: string;
  /** Path of the file in the repo, `/`-separated. */
  filename: string;
  /** Branch, tag or commit hash; default "main". */
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface DownloadRepoOptions extends HubLocation {
  repo: string;
  revision?: string;
  /**
   * huggingface_hub allow_patterns (fnmatch, `*` crosses `/`). Default: what a model needs — config.json,
   * generation_config.json, tokenizer.json, tokenizer_config.json, chat_template.jinja, special_tokens_map.json
   * and the safetensors weights: the shards model.safetensors.index.json names when there is one, else
   * model.safetensors, else the top-level *.safetensors.
   */
  allowPatterns?: readonly string[];
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  /** Files downloaded at once; default 4. */
  concurrency?: number;
}

/** Downloads one file (or finds it in the cache) and returns its path under snapshots/{commit}/. */
export async function downloadFile(o: DownloadFileOptions): Promise<string> {
  const revision = o.revision ?? DEFAULT_REVISION;
  checkArgs(o.repo, o.filename, revision);
  const s = hubSettings(o);
  const repoDir = repoCacheDir(s.cacheDir, o.repo);
  const subject = { repo: o.repo, filename: o.filename, revision, endpoint: s.endpoint, tokenSent: !!s.token };

  if (isCommitHash(revision)) {
    const pointer = snapshotPath(repoDir, revision, o.filename);
    if (await existsFollowing(pointer)) return reportCached(pointer, o);
  }
  if (s.offline) return fromCacheOrThrow(o, s, revision, offlineReason(o));

  const req: HubRequest = { endpoint: s.endpoint, token: s.token, signal: o.signal };
  let meta: FileMetadata;
  try {
    meta = await fetchFileMetadata(resolveUrl(s.endpoint, o.repo, revision, o.filename), req, subject);
  } catch (e) {
    if (isNetworkFailure(e, o.signal)) {
      return fromCacheOrThrow(o, s, revision, `the Hub at ${s.endpoint} could not be reached (${describeFailure(e)})`, e);
    }
    if (e instanceof HubError && e.code === 'http-error' && (e.status ?? 0) >= 500) {
      // The Hub is down: a cached copy beats an error (huggingface_hub does the same).
      const cached = await resolveCached({ repo: o.repo, filename: o.filename, revision, cacheDir: s.cacheDir });
      if (cached !== null) return reportCached(cached, o);
    }
    throw wrapAbort(e, o.signal, subject);
  }
  if (!isSafeComponent(meta.commit) || !isSafeComponent(meta.etag)) {
    throw badResponse(subject, `commit "${meta.commit}" or ETag "${meta.etag}" cannot name a cache entry`);
  }

  await writeRef(repoDir, revision, meta.commit);
  const pointer = snapshotPath(repoDir, meta.commit, o.filename);
  if (await existsFollowing(pointer)) return reportCached(pointer, o);

  const blob = blobPath(repoDir, meta.etag);
  await mkdir(dirname(blob), { recursive: true });
  await withBlobLock(blob, async () => {
    if (await existsFollowing(blob)) return; // same bytes under another name, or another call just finished it
    await transferBlob({
      url: meta.downloadUrl,
      incompletePath: `${blob}.incomplete`,
      blobPath: blob,
      expectedSize: meta.size,
      etag: meta.etag,
      req,
      subject,
      onProgress: o.onProgress,
    });
  });
  await linkSnapshot(blob, pointer);
  return pointer;
}

/**
 * Downloads the files of a repo a model needs (or those matching allowPatterns) at one commit, and returns the
 * snapshot folder snapshots/{commit}/. Files are fetched by commit hash so that a push during the download
 * cannot mix two versions.
 */
export async function downloadRepo(o: DownloadRepoOptions): Promise<string> {
  const revision = o.revision ?? DEFAULT_REVISION;
  checkArgs(o.repo, undefined, revision);
  const s = hubSettings(o);
  const repoDir = repoCacheDir(s.cacheDir, o.repo);
  const subject: RequestSubject = { repo: o.repo, revision, endpoint: s.endpoint, tokenSent: !!s.token };
  if (s.offline) return snapshotFromCacheOrThrow(o, s, revision, offlineReason(o));

  let rev: RepoRevision;
  try {
    rev = await fetchRepoRevision(o.repo, revision, { endpoint: s.endpoint, token: s.token, signal: o.signal }, subject);
  } catch (e) {
    if (isNetworkFailure(e, o.signal)) {
      const reason = `the Hub at ${s.endpoint} could not be reached (${describeFailure(e)})`;
      return snapshotFromCacheOrThrow(o, s, revision, reason, e);
    }
    throw wrapAbort(e, o.signal, subject);
  }
  if (!isCommitHash(rev.commit)) throw badResponse(subject, `the revision API gave "${rev.commit}" as the commit`);

  const fileOptions = {
    repo: o.repo,
    revision: rev.commit,
    cacheDir: s.cacheDir,
    endpoint: s.endpoint,
    offline: false,
    ...(s.token === undefined ? {} : { token: s.token }),
    ...(o.env === undefined ? {} : { env: o.env }),
    ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress }),
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  };
  const fetchAll = (files: string[]): Promise<void> =>
    forEachLimited(files, o.concurrency ?? 4, async (filename) => {
      await downloadFile({ ...fileOptions, filename });
    });

  if (o.allowPatterns !== undefined) {
    await fetchAll(filterFiles(rev.files, o.allowPatterns));
  } else {
    const selection = defaultSelection(rev.files);
    const hasWeights = selection.needsIndex || selection.files.some((f) => f.endsWith('.safetensors'));
    if (!hasWeights) {
      throw new HubError(
        'file-not-found',
        `${o.repo} at revision "${revision}" has no safetensors weights (files: ${rev.files.join(', ') || 'none'}). ` +
          'Only .safetensors checkpoints can be loaded; pass allowPatterns to fetch other files.',
        { repo: o.repo, revision },
      );
    }
    await fetchAll(selection.files);
    if (selection.needsIndex) {
      const index = await readFile(snapshotPath(repoDir, rev.commit, SAFETENSORS_INDEX), 'utf8');
      const shards = shardsFromIndex(index);
      const missing = shards.filter((f) => !rev.files.includes(f));
      if (missing.length > 0) {
        throw badResponse(subject, `${SAFETENSORS_INDEX} names shards the repo does not have: ${missing.join(', ')}`);
      }
      await fetchAll(shards);
    }
  }
  await writeRef(repoDir, revision, rev.commit);
  const snapshot = snapshotPath(repoDir, rev.commit);
  await mkdir(snapshot, { recursive: true });
  return snapshot;
}

// ---------------------------------------------------------------------------------------------------------

function offlineReason(o: HubLocation): string {
  return o.offline === true ? 'offline mode was requested' : 'HF_HUB_OFFLINE is set (offline mode)';
}

async function reportCached(path: string, o: DownloadFileOptions): Promise<string> {
  if (o.onProgress) {
    const size = (await stat(path)).size;
    o.onProgress({ file: o.filename, received: size, total: size });
  }
  return path;
}

async function fromCacheOrThrow(
  o: DownloadFileOptions,
  s: HubSettings,
  revision: string,
  reason: string,
  cause?: unknown,
): Promise<string> {
  const cached = await resolveCached({ repo: o.repo, filename: o.filename, revision, cacheDir: s.cacheDir });
  if (cached !== null) return reportCached(cached, o);
  throw new HubError(
    'offline',
    `${o.filename} of ${o.repo} (revision "${revision}") is not in the Hugging Face cache at ${s.cacheDir}, and ` +
      `the machine is offline: ${reason}. Download it once while online (or point HF_HUB_CACHE / HF_HOME at a ` +
      'cache that has it).',
    { repo: o.repo, filename: o.filename, revision, cacheDir: s.cacheDir, cause },
  );
}

async function snapshotFromCacheOrThrow(
  o: DownloadRepoOptions,
  s: HubSettings,
  revision: string,
  reason: string,
  cause?: unknown,
): Promise<string> {
  const repoDir = repoCacheDir(s.cacheDir, o.repo);
  const commit = await cachedCommit(repoDir, revision);
  if (commit !== null && (await existsFollowing(snapshotPath(repoDir, commit)))) return snapshotPath(repoDir, commit);
  throw new HubError(
    'offline',
    `${o.repo} (revision "${revision}") is not in the Hugging Face cache at ${s.cacheDir}, and the machine is ` +
      `offline: ${reason}. Download it once while online (or point HF_HUB_CACHE / HF_HOME at a cache that has it).`,
    { repo: o.repo, revision, cacheDir: s.cacheDir, cause },
  );
}

/** A cancelled metadata call surfaces as a DOMException; callers get the typed error instead. */
function wrapAbort(e: unknown, signal: AbortSignal | undefined, subject: RequestSubject): unknown {
  if (!signal?.aborted || e instanceof HubError) return e;
  const what = subject.filename === undefined ? subject.repo : `${subject.filename} from ${subject.repo}`;
  const details = { repo: subject.repo, ...(subject.filename === undefined ? {} : { filename: subject.filename }) };
  return new HubError('aborted', `Download of ${what} was cancelled.`, { ...details, cause: e });
}

/**
 * In-process lock per blob: two downloads of the same bytes (one file asked twice, or two files with one
 * content) must not append to one .incomplete file together.
 */
const blobLocks = new Map<string, Promise<void>>();

async function withBlobLock(key: string, fn: () => Promise<void>): Promise<void> {
  const previous = blobLocks.get(key) ?? Promise.resolve();
  const run = previous.then(fn);
  const tail = run.catch(() => undefined);
  blobLocks.set(key, tail);
  try {
    await run;
  } finally {
    if (blobLocks.get(key) === tail) blobLocks.delete(key);
  }
}

/** Runs `fn` over `items`, `limit` at a time; waits for all started work, then throws the first failure. */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
