/**
 * The Hugging Face cache layout, identical to huggingface_hub's so that both share one cache:
 *
 *   {cache}/models--{org}--{name}/
 *     blobs/{etag}                      file bytes, named by git sha1 (regular file) or sha256 (LFS file)
 *     blobs/{etag}.incomplete           a partial download, resumed with `Range: bytes=N-`
 *     snapshots/{commit}/{filename}     relative symlink to ../../blobs/{etag} (one more ../ per folder level)
 *     refs/{revision}                   the commit hash a branch or tag pointed to when last resolved (no newline)
 *
 * Also: where the cache and the Hub are (env), and offline resolution (refs → snapshot).
 */
import { readFileSync } from 'node:fs';
import { copyFile, lstat, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { HubError } from './errors.ts';

export type Env = Record<string, string | undefined>;

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE']);
const isTrue = (v: string | undefined): boolean => v !== undefined && TRUE_VALUES.has(v.trim().toUpperCase());

const expandHome = (p: string): string => (p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (huggingface_hub's constants.py). */
export function hfHome(env: Env = process.env): string {
  if (env.HF_HOME) return expandHome(env.HF_HOME);
  return join(env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), '.cache'), 'huggingface');
}

/** `HF_HUB_CACHE`, else the legacy `HUGGINGFACE_HUB_CACHE`, else `{HF_HOME}/hub`. */
export function hubCacheDir(env: Env = process.env): string {
  const explicit = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  return explicit ? expandHome(explicit) : join(hfHome(env), 'hub');
}

/** The options every entry point takes to locate the cache and the Hub; unset ones come from `env`. */
export interface HubLocation {
  cacheDir?: string;
  /** Hub base URL; default `HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** Access token; default `HF_TOKEN`, else the token file `huggingface-cli login` wrote. */
  token?: string;
  /** Never touch the network; default `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`). */
  offline?: boolean;
  /** Where HF_* settings are read; default process.env (tests pass their own). */
  env?: Env;
}

export interface HubSettings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
}

function storedToken(env: Env): string | undefined {
  const path = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), 'token');
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined; // no login: anonymous access
  }
}

export function hubSettings(o: HubLocation): HubSettings {
  const env = o.env ?? process.env;
  const offline = o.offline ?? (isTrue(env.HF_HUB_OFFLINE) || isTrue(env.TRANSFORMERS_OFFLINE));
  return {
    cacheDir: o.cacheDir ?? hubCacheDir(env),
    endpoint: (o.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    // The token is only looked up when online: offline resolution never needs it.
    token: offline ? undefined : (o.token ?? (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || storedToken(env))),
    offline,
  };
}

const COMMIT_HASH = /^[0-9a-f]{40}$/;
export const isCommitHash = (revision: string): boolean => COMMIT_HASH.test(revision);

/** A single path component that cannot climb out of its folder (server-supplied etags and commits included). */
export const isSafeComponent = (s: string): boolean =>
  s.length > 0 && s !== '.' && s !== '..' && !/[/\\\0]/.test(s) && !s.includes(':');

/**
 * Repo ids, filenames and revisions become cache paths, and downloadRepo takes filenames from the server: refuse anything
 * that could escape the repo folder.
 */
export function checkArgs(repo: string, filename?: string, revision?: string): void {
  const parts = repo.split('/');
  if (parts.length > 2 || !parts.every(isSafeComponent) || repo.includes('--')) {
    throw new HubError('invalid-argument', `"${repo}" is not a Hub repo id (expected "org/name" or "name").`, { repo });
  }
  if (filename !== undefined && !filename.split('/').every(isSafeComponent)) {
    throw new HubError('invalid-argument', `"${filename}" is not a safe file path inside ${repo}.`, { repo, filename });
  }
  if (revision !== undefined && !revision.split('/').every(isSafeComponent)) {
    throw new HubError('invalid-argument', `"${revision}" is not a valid revision of ${repo}.`, { repo, revision });
  }
}

/** `models--org--name` (huggingface_hub's repo_folder_name for repo_type "model"). */
export const repoFolderName = (repo: string): string => ['models', ...repo.split('/')].join('--');

export const repoCacheDir = (cacheDir: string, repo: string): string => join(cacheDir, repoFolderName(repo));

export const snapshotPath = (repoDir: string, commit: string, filename?: string): string =>
  filename === undefined ? join(repoDir, 'snapshots', commit) : join(repoDir, 'snapshots', commit, ...filename.split('/'));

export const blobPath = (repoDir: string, etag: string): string => join(repoDir, 'blobs', etag);

/** True if `path` exists, following symlinks (a dangling snapshot link counts as missing). */
export async function existsFollowing(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The commit a revision points to in the cache: a commit hash is itself, a branch or tag is read from refs/. */
export async function cachedCommit(repoDir: string, revision: string): Promise<string | null> {
  if (isCommitHash(revision)) return revision;
  try {
    const commit = (await readFile(join(repoDir, 'refs', ...revision.split('/')), 'utf8')).trim();
    return isSafeComponent(commit) ? commit : null;
  } catch {
    return null;
  }
}

/**
 * Offline lookup, like huggingface_hub's try_to_load_from_cache: the snapshot path of `filename` at `revision`,
 * or null if it is not cached. Never touches the network.
 */
export async function resolveCached(o: {
  repo: string;
  filename: string;
  revision?: string;
  cacheDir?: string;
  env?: Env;
}): Promise<string | null> {
  const revision = o.revision ?? DEFAULT_REVISION;
  checkArgs(o.repo, o.filename, revision);
  const repoDir = repoCacheDir(o.cacheDir ?? hubCacheDir(o.env ?? process.env), o.repo);
  const commit = await cachedCommit(repoDir, revision);
  if (commit === null) return null;
  const path = snapshotPath(repoDir, commit, o.filename);
  return (await existsFollowing(path)) ? path : null;
}

/** Records revision → commit in refs/, as huggingface_hub does; untouched when unchanged (read-only caches). */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const ref = join(repoDir, 'refs', ...revision.split('/'));
  try {
    if ((await readFile(ref, 'utf8')) === commit) return;
  } catch {
    // not written yet
  }
  await mkdir(dirname(ref), { recursive: true });
  await writeFile(ref, commit);
}

/**
 * Points snapshots/{commit}/{filename} at the blob with a relative symlink (the cache folder can then move).
 * Where symlinks are not allowed (Windows without developer mode) the blob is copied instead, as huggingface_hub
 * does.
 */
export async function linkSnapshot(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      // Another download linked it between rm and symlink: fine if it points at a file.
      if ((await lstat(pointer)).isSymbolicLink() && (await existsFollowing(pointer))) return;
      throw e;
    }
    if (code === 'EPERM' || code === 'EACCES' || code === 'ENOTSUP' || code === 'ENOSYS') {
      await copyFile(blob, pointer);
      return;
    }
    throw e;
  }
}
