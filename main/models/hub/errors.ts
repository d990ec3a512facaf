/**
 * The one error type of the Hub downloader. `code` is for programs (the UI picks a remedy by it); `message` is
 * for people and always names the repo (and file, where there is one) and what to do next.
 */
export type HubErrorCode =
  /** Offline (HF_HUB_OFFLINE or the Hub unreachable) and the file is not in the cache. */
  | 'offline'
  /** 401, or 403 without a gate: private repo, bad token, or (unauthenticated) a repo that does not exist. */
  | 'unauthorized'
  /** 403 GatedRepo: the account behind the token has not been granted access. */
  | 'gated'
  | 'repo-not-found'
  | 'revision-not-found'
  | 'file-not-found'
  /** A 404 the Hub did not qualify: the repo or the file is missing. */
  | 'not-found'
  /** The transfer broke off; the partial `.incomplete` blob is kept and the next call resumes it. */
  | 'interrupted'
  /** The caller's AbortSignal fired; the partial blob is kept like for 'interrupted'. */
  | 'aborted'
  /** The bytes do not hash to the LFS sha256 the Hub announced; nothing was cached. */
  | 'checksum-mismatch'
  /** The server answered something the protocol does not allow (no commit header, bad Content-Range...). */
  | 'bad-response'
  /** Any other HTTP failure (5xx, 429...). */
  | 'http-error'
  /** A repo id or filename that cannot be a cache path (absolute, `..`, backslashes). */
  | 'invalid-argument';

export interface HubErrorDetails {
  repo: string;
  filename?: string;
  revision?: string;
  status?: number;
  cacheDir?: string;
  /** Where a partial download was kept (interrupted / aborted). */
  partialPath?: string;
  cause?: unknown;
}

export class HubError extends Error {
  override readonly name = 'HubError';
  readonly code: HubErrorCode;
  readonly repo: string;
  readonly filename: string | undefined;
  readonly revision: string | undefined;
  readonly status: number | undefined;
  readonly cacheDir: string | undefined;
  readonly partialPath: string | undefined;

  constructor(code: HubErrorCode, message: string, details: HubErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.repo = details.repo;
    this.filename = details.filename;
    this.revision = details.revision;
    this.status = details.status;
    this.cacheDir = details.cacheDir;
    this.partialPath = details.partialPath;
  }
}

export const isHubError = (e: unknown): e is HubError => e instanceof HubError;

/** What a request was about, so that an HTTP failure can be turned into a sentence that names it. */
export interface RequestSubject {
  repo: string;
  filename?: string;
  revision?: string;
  endpoint: string;
  tokenSent: boolean;
}

/**
 * Maps a failed Hub response to a HubError. The Hub qualifies its 4xx answers with `X-Error-Code`
 * (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and `X-Error-Message`; HEAD answers have no body,
 * so those headers are all there is. Without a token the Hub answers 401 even for repos that do not exist (it
 * will not tell strangers which private repos exist), so a 401 always mentions both possibilities.
 */
export function errorFromResponse(status: number, headers: Headers, subject: RequestSubject): HubError {
  const errorCode = headers.get('x-error-code');
  const serverMessage = headers.get('x-error-message');
  const { repo, filename, revision } = subject;
  const details: HubErrorDetails = { repo, status };
  if (filename !== undefined) details.filename = filename;
  if (revision !== undefined) details.revision = revision;
  const fileInRepo = filename === undefined ? `repo ${repo}` : `${filename} in ${repo}`;
  const hint = serverMessage ? ` The Hub said: "${serverMessage}".` : '';
  const tokenAdvice = subject.tokenSent
    ? 'A token was sent (HF_TOKEN): check that it is valid and that its account has access to this repo.'
    : 'No token was sent: set HF_TOKEN to a Hugging Face access token that can read this repo.';

  if (errorCode === 'GatedRepo') {
    return new HubError(
      'gated',
      `${repo} is a gated repo (HTTP ${status}): request access on its Hub page, then set HF_TOKEN to a token of ` +
        `the account that was granted access. ${subject.tokenSent ? 'The token sent (HF_TOKEN) has no access yet.' : 'No token was sent.'}${hint}`,
      details,
    );
  }
  if (status === 401 || status === 403) {
    return new HubError(
      'unauthorized',
      `Access to ${fileInRepo} was refused (HTTP ${status}): the repo is private or gated, or does not exist. ` +
        `${tokenAdvice}${hint}`,
      details,
    );
  }
  if (status === 404) {
    if (errorCode === 'RepoNotFound') {
      return new HubError(
        'repo-not-found',
        `Repository ${repo} was not found on ${subject.endpoint} (HTTP 404). Check the repo id; if it is private, ` +
          `set HF_TOKEN to a token that can read it.${hint}`,
        details,
      );
    }
    if (errorCode === 'RevisionNotFound') {
      return new HubError(
        'revision-not-found',
        `Revision "${revision ?? 'main'}" of ${repo} was not found (HTTP 404): check the branch, tag or commit.${hint}`,
        details,
      );
    }
    if (errorCode === 'EntryNotFound') {
      return new HubError(
        'file-not-found',
        `File ${filename ?? '(none)'} was not found in ${repo} at revision "${revision ?? 'main'}" (HTTP 404).${hint}`,
        details,
      );
    }
    return new HubError(
      'not-found',
      `Not found (HTTP 404): repo ${repo}${filename === undefined ? '' : ` or its file ${filename}`} at revision ` +
        `"${revision ?? 'main'}" does not exist on ${subject.endpoint}.${hint}`,
      details,
    );
  }
  return new HubError('http-error', `The Hub answered HTTP ${status} for ${fileInRepo}.${hint}`, details);
}
