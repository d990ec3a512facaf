/**
 * The Hub's HTTP protocol, as huggingface_hub speaks it (file_download.py):
 *
 *   HEAD {endpoint}/{repo}/resolve/{revision}/{filename}
 *     → X-Repo-Commit (the commit the revision resolved to), X-Linked-Etag (LFS: the sha256) or ETag (git sha1),
 *       X-Linked-Size or Content-Length; LFS files answer 302 with a Location on a CDN.
 *   GET  that Location (or the resolve URL) for the bytes, with `Range: bytes=N-` to resume.
 *   GET  {endpoint}/api/models/{repo}/revision/{revision} → { sha, siblings: [{ rfilename }] }
 *
 * Redirects are followed by hand (`redirect: 'manual'`) so that relative Locations resolve against the URL that
 * sent them and the token never leaves the Hub's origin (a CDN URL is pre-signed and must not receive it).
 */
import { errorFromResponse, HubError, type RequestSubject } from './errors.ts';

const MAX_REDIRECTS = 10;
/** Like huggingface_hub's HF_HUB_ETAG_TIMEOUT: a metadata call that hangs this long counts as offline. */
export const METADATA_TIMEOUT_MS = 10_000;
const USER_AGENT = 'peft-studio/0.1 (hub-download)';

export interface HubRequest {
  endpoint: string;
  token: string | undefined;
  signal: AbortSignal | undefined;
}

/** Headers for one hop: the token only on the Hub's own origin. */
function headersFor(url: string, req: HubRequest, extra: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    // The sizes and hashes we check are of the raw bytes: no transfer compression.
    'accept-encoding': 'identity',
    ...extra,
  };
  if (req.token && new URL(url).origin === new URL(req.endpoint).origin) {
    headers.authorization = `Bearer ${req.token}`;
  }
  return headers;
}

const isRedirect = (status: number): boolean => status >= 300 && status < 400 && status !== 304;

/** Frees the connection of a response whose body we will not read. */
const discard = async (res: Response): Promise<void> => {
  await res.body?.cancel().catch(() => undefined);
};

/** fetch rejects with a TypeError('fetch failed', { cause }) on DNS/connect/reset failures, and on timeouts. */
export function isNetworkFailure(e: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return false;
  if (e instanceof HubError) return false;
  const name = (e as { name?: string } | null)?.name;
  // A malformed endpoint is a TypeError too, but no network failure: let it surface as is.
  if (e instanceof TypeError) return (e as { code?: string }).code !== 'ERR_INVALID_URL';
  return name === 'TimeoutError' || name === 'AbortError';
}

/** Short description of a network failure, for messages ("ECONNREFUSED 127.0.0.1:9"). */
export function describeFailure(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } } | null)?.cause;
  if (cause?.code || cause?.message) return [cause.code, cause.message].filter(Boolean).join(': ');
  return e instanceof Error ? e.message : String(e);
}

/** Resolve URL of a file, with the revision and each path segment percent-encoded as huggingface_hub does. */
export function resolveUrl(endpoint: string, repo: string, revision: string, filename: string): string {
  const path = filename.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

export interface FileMetadata {
  commit: string;
  /** Normalized (no quotes, no W/): the blob's name in the cache. */
  etag: string;
  /** Bytes of the real file (for LFS, not the pointer), when the Hub said. */
  size: number | null;
  /** Where the bytes are: the CDN Location for LFS files, else the resolve URL. */
  downloadUrl: string;
}

const normalizeEtag = (etag: string): string => etag.replace(/^W\//, '').replace(/^"|"$/g, '');

const parseSize = (v: string | null): number | null => {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v.trim());
};

/**
 * HEAD the resolve URL. Relative redirects (a renamed repo, the Hub's own resolve cache) are followed as
 * huggingface_hub does; an absolute one is the CDN and becomes the download URL without being requested. The
 * metadata headers are taken from the last hop that carries them, so a same-origin CDN path whose own answer
 * lacks them still works.
 */
export async function fetchFileMetadata(url: string, req: HubRequest, subject: RequestSubject): Promise<FileMetadata> {
  const signals = [AbortSignal.timeout(METADATA_TIMEOUT_MS), ...(req.signal ? [req.signal] : [])];
  const signal = AbortSignal.any(signals);
  let current = url;
  // Headers of the hop that resolved the file: the last one with X-Repo-Commit (else the first hop).
  let meta: { headers: Headers; redirect: boolean } | null = null;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetch(current, { method: 'HEAD', headers: headersFor(current, req, {}), redirect: 'manual', signal });
    await discard(res);
    if (!isRedirect(res.status) && !res.ok) throw errorFromResponse(res.status, res.headers, subject);
    if (meta === null || res.headers.has('x-repo-commit')) meta = { headers: res.headers, redirect: isRedirect(res.status) };
    if (!isRedirect(res.status)) return metadataFrom(meta, current, subject);
    const location = res.headers.get('location');
    if (!location) throw badResponse(subject, `a ${res.status} redirect without a Location header from ${current}`);
    const next = new URL(location, current).href;
    // Like huggingface_hub: follow relative Locations (same site), stop at an absolute one (the CDN).
    const absolute = /^[a-z][a-z0-9+.-]*:/i.test(location) || location.startsWith('//');
    if (absolute) return metadataFrom(meta, next, subject);
    current = next;
  }
  throw badResponse(subject, `more than ${MAX_REDIRECTS} redirects from ${url}`);
}

function metadataFrom(
  meta: { headers: Headers; redirect: boolean },
  downloadUrl: string,
  subject: RequestSubject,
): FileMetadata {
  const h = meta.headers;
  const commit = h.get('x-repo-commit');
  // X-Linked-Etag is the LFS file's sha256; ETag on that same answer belongs to the pointer file.
  const etag = h.get('x-linked-etag') ?? h.get('etag');
  if (commit === null) throw badResponse(subject, 'no X-Repo-Commit header (is the endpoint a Hugging Face Hub?)');
  if (etag === null) throw badResponse(subject, 'no ETag header: the cached file could not be named or verified');
  // A redirect's Content-Length is its own (empty) body's, not the file's.
  const size = parseSize(h.get('x-linked-size')) ?? (meta.redirect ? null : parseSize(h.get('content-length')));
  return { commit, etag: normalizeEtag(etag), size, downloadUrl };
}

export function badResponse(subject: RequestSubject, what: string): HubError {
  const target = subject.filename === undefined ? subject.repo : `${subject.filename} in ${subject.repo}`;
  const details = { repo: subject.repo, ...(subject.filename === undefined ? {} : { filename: subject.filename }) };
  return new HubError('bad-response', `Unexpected answer from ${subject.endpoint} for ${target}: ${what}.`, details);
}

/**
 * GET with redirects followed by hand, every hop carrying `extra` headers (the Range) and the token only on the
 * Hub's origin. The body is left unread for the caller to stream.
 */
export async function getFollowingRedirects(
  url: string,
  req: HubRequest,
  extra: Record<string, string>,
  subject: RequestSubject,
): Promise<Response> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetch(current, { headers: headersFor(current, req, extra), redirect: 'manual', signal: req.signal });
    if (!isRedirect(res.status)) return res;
    await discard(res);
    const location = res.headers.get('location');
    if (!location) throw badResponse(subject, `a ${res.status} redirect without a Location header from ${current}`);
    current = new URL(location, current).href;
  }
  throw badResponse(subject, `more than ${MAX_REDIRECTS} redirects from ${url}`);
}

export interface RepoRevision {
  commit: string;
  files: string[];
}

/** The revision API: which commit a revision is at, and every file in the repo at that commit. */
export async function fetchRepoRevision(repo: string, revision: string, req: HubRequest, subject: RequestSubject): Promise<RepoRevision> {
  const url = `${req.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
  const signal = AbortSignal.any([AbortSignal.timeout(METADATA_TIMEOUT_MS), ...(req.signal ? [req.signal] : [])]);
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetch(current, { headers: headersFor(current, req, { accept: 'application/json' }), redirect: 'manual', signal });
    if (isRedirect(res.status) && res.headers.get('location')) {
      await discard(res);
      current = new URL(res.headers.get('location') ?? '', current).href; // a renamed repo
      continue;
    }
    if (!res.ok) {
      await discard(res);
      throw errorFromResponse(res.status, res.headers, subject);
    }
    const info = (await res.json().catch(() => ({}))) as { sha?: unknown; siblings?: unknown };
    const siblings = Array.isArray(info.siblings) ? (info.siblings as { rfilename?: unknown }[]) : null;
    if (typeof info.sha !== 'string' || siblings === null) {
      throw badResponse(subject, 'the revision API answered without "sha" and "siblings"');
    }
    const files = siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string');
    return { commit: info.sha, files };
  }
  throw badResponse(subject, `more than ${MAX_REDIRECTS} redirects from ${url}`);
}
