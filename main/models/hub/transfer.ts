/**
 * One blob's bytes onto disk: streamed into `blobs/{etag}.incomplete` (never buffered whole), resumed from that
 * file's size with `Range: bytes=N-`, checked (size; sha256 for LFS files, whose ETag is the sha256), then
 * renamed to `blobs/{etag}`.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { HubError, errorFromResponse, type RequestSubject } from './errors.ts';
import { badResponse, getFollowingRedirects, type HubRequest } from './http.ts';

export interface DownloadProgress {
  /** The file's path in the repo. */
  file: string;
  /** Bytes of the file on disk so far (a resumed download starts at the resumed size). */
  received: number;
  /** The file's size, when the Hub said. */
  total: number | null;
}

export interface TransferArgs {
  url: string;
  incompletePath: string;
  blobPath: string;
  expectedSize: number | null;
  etag: string;
  req: HubRequest;
  subject: RequestSubject & { filename: string };
  onProgress: ((p: DownloadProgress) => void) | undefined;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Progress events at most every 1/1000 of the file, and never more often than every 64 KiB. */
const progressStep = (total: number | null): number => Math.max(64 * 1024, Math.floor((total ?? 0) / 1000));

const sizeOf = async (path: string): Promise<number> => {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
};

/** Feeds the first `length` bytes already on disk into the hash, so a resumed file is still checked whole. */
async function hashPrefix(hash: Hash, path: string, length: number): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

/** `Content-Range: bytes START-END/TOTAL` → START, or null if absent or unreadable. */
const rangeStart = (header: string | null): number | null => {
  const m = header === null ? null : /^bytes\s+(\d+)-\d+\/(?:\d+|\*)$/.exec(header.trim());
  return m ? Number(m[1]) : null;
};

export async function transferBlob(a: TransferArgs): Promise<void> {
  const { subject } = a;
  const details = { repo: subject.repo, filename: subject.filename, partialPath: a.incompletePath };
  // Two rounds at most: the second only after a 416 (our partial file did not fit the server's blob) wiped it.
  for (let round = 0; round < 2; round++) {
    let offset = await sizeOf(a.incompletePath);
    if (a.expectedSize !== null && offset > a.expectedSize) {
      await rm(a.incompletePath, { force: true }); // longer than the file: not a prefix of it
      offset = 0;
    }
    const hash = SHA256_HEX.test(a.etag) ? createHash('sha256') : null;
    if (a.expectedSize === null || offset < a.expectedSize) {
      const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
      let res: Response;
      try {
        res = await getFollowingRedirects(a.url, a.req, range, subject);
      } catch (e) {
        throw interruption(e, a, offset);
      }
      if (res.status === 416 && offset > 0) {
        await res.body?.cancel().catch(() => undefined);
        await rm(a.incompletePath, { force: true });
        continue;
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw errorFromResponse(res.status, res.headers, subject);
      }
      if (res.status === 206) {
        const start = rangeStart(res.headers.get('content-range'));
        if (start !== offset) {
          await res.body?.cancel().catch(() => undefined);
          throw badResponse(subject, `a 206 for "bytes=${offset}-" whose Content-Range is ${res.headers.get('content-range')}`);
        }
      } else {
        offset = 0; // 200 to a Range request: the server sent the whole file, so start the file over
      }
      if (hash) await hashPrefix(hash, a.incompletePath, offset);
      await streamBody(res, a, offset, hash);
    } else {
      // Complete on disk already (the last run stopped before the rename): check it, no request.
      if (hash) await hashPrefix(hash, a.incompletePath, offset);
      a.onProgress?.({ file: subject.filename, received: offset, total: a.expectedSize });
    }

    const size = await sizeOf(a.incompletePath);
    if (a.expectedSize !== null && size !== a.expectedSize) {
      throw new HubError(
        'interrupted',
        `Download of ${subject.filename} from ${subject.repo} stopped at ${size} of ${a.expectedSize} bytes. ` +
          `The partial file is kept at ${a.incompletePath}; download again to resume.`,
        details,
      );
    }
    if (hash) {
      const actual = hash.digest('hex');
      if (actual !== a.etag) {
        // Resuming cannot repair wrong bytes: drop them so the next call starts clean.
        await rm(a.incompletePath, { force: true });
        throw new HubError(
          'checksum-mismatch',
          `Checksum mismatch for ${subject.filename} from ${subject.repo}: the Hub announced sha256 ${a.etag} but ` +
            `the downloaded bytes hash to ${actual}. The file was discarded and not cached; try again.`,
          { repo: subject.repo, filename: subject.filename },
        );
      }
    }
    await rename(a.incompletePath, a.blobPath);
    return;
  }
  throw badResponse(subject, 'HTTP 416 twice: the server refuses the range of a fresh download');
}

async function streamBody(res: Response, a: TransferArgs, offset: number, hash: Hash | null): Promise<void> {
  const file = await open(a.incompletePath, offset > 0 ? 'a' : 'w');
  let received = offset;
  let lastReported = offset;
  const step = progressStep(a.expectedSize);
  const report = (): void => {
    lastReported = received;
    a.onProgress?.({ file: a.subject.filename, received, total: a.expectedSize });
  };
  try {
    report();
    if (res.body) {
      for await (const chunk of res.body) {
        // Written before it is counted: `received` never runs ahead of the bytes on disk.
        await file.write(chunk);
        hash?.update(chunk);
        received += chunk.byteLength;
        if (received - lastReported >= step) report();
      }
    }
  } catch (e) {
    throw interruption(e, a, received);
  } finally {
    await file.close();
  }
  if (received !== lastReported) report();
}

function interruption(e: unknown, a: TransferArgs, received: number): HubError {
  if (e instanceof HubError) return e;
  const { subject } = a;
  const details = { repo: subject.repo, filename: subject.filename, partialPath: a.incompletePath, cause: e };
  const of = a.expectedSize === null ? '' : ` of ${a.expectedSize}`;
  if (a.req.signal?.aborted) {
    return new HubError(
      'aborted',
      `Download of ${subject.filename} from ${subject.repo} was cancelled at ${received}${of} bytes; the partial ` +
        `file is kept at ${a.incompletePath} and the next download resumes it.`,
      details,
    );
  }
  const why = e instanceof Error ? (e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message) : String(e);
  return new HubError(
    'interrupted',
    `Download of ${subject.filename} from ${subject.repo} was interrupted at ${received}${of} bytes (${why}). ` +
      `The partial file is kept at ${a.incompletePath}; download again to resume.`,
    details,
  );
}
