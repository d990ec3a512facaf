/**
 * Streaming line reader for JSON Lines (and any line-based file too big to hold twice in memory): reads 64 KiB
 * chunks, never holds more than `maxLineBytes` of one line, so a 50 MB line is reported by number instead of
 * exhausting memory. Each line is decoded as strict UTF-8 on its own, so one bad line does not sink the file.
 */
import { createReadStream } from 'node:fs';
import type { ProblemLog } from './problems.ts';
import { decodeUtf8, formatMiB, hasUtf8Bom, NOT_UTF8, utf16Bom } from './utf8.ts';

export interface TextLine {
  /** 1-based. */
  readonly line: number;
  readonly text: string;
}

export interface ReadLinesOptions {
  /** Longest line kept, in bytes; a longer one is skipped with a problem naming it. */
  readonly maxLineBytes: number;
}

export interface ReadLinesSummary {
  /** Physical lines in the file (a last line without a newline counts). */
  lines: number;
  bytes: number;
  /** Most bytes of one line held at once (never more than maxLineBytes). */
  maxHeldBytes?: number;
}

/**
 * Yields every non-blank line (without its CR/LF, BOM dropped) and reports too-long and non-UTF-8 lines to `log`.
 * `summary` is filled as the file is read.
 */
export async function* readTextLines(
  path: string,
  log: ProblemLog,
  options: ReadLinesOptions,
  summary: ReadLinesSummary = { lines: 0, bytes: 0 },
): AsyncGenerator<TextLine> {
  const stream = createReadStream(path, { highWaterMark: 1 << 16 });
  let parts: Buffer[] = [];
  let lineBytes = 0;
  let overflow = false;
  let line = 1;
  let first = true;

  const finishLine = (): TextLine | undefined => {
    const number = line;
    line++;
    summary.lines = number;
    if (overflow) {
      log.error(
        number,
        `line ${number} is ${formatMiB(lineBytes)} long, over the ${formatMiB(options.maxLineBytes)} limit per line; ` +
          'is it really one JSON record per line? (raise maxLineBytes to read it)',
      );
      return undefined;
    }
    let bytes: Uint8Array = parts.length === 1 ? parts[0]! : Buffer.concat(parts, lineBytes);
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
    const text = decodeUtf8(bytes);
    if (text === undefined) {
      log.error(number, NOT_UTF8);
      return undefined;
    }
    return text.trim() === '' ? undefined : { line: number, text };
  };

  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let data = chunk;
    summary.bytes += data.length;
    if (first) {
      first = false;
      const utf16 = utf16Bom(data);
      if (utf16) {
        log.error(1, `the file is ${utf16} text (it starts with a UTF-16 byte-order mark); save it as UTF-8`);
        stream.destroy();
        return;
      }
      if (hasUtf8Bom(data)) data = data.subarray(3);
    }
    let start = 0;
    while (start < data.length) {
      const newline = data.indexOf(0x0a, start);
      const end = newline < 0 ? data.length : newline;
      const piece = data.subarray(start, end);
      if (!overflow && lineBytes + piece.length > options.maxLineBytes) {
        overflow = true;
        parts = [];
      }
      if (!overflow && piece.length > 0) parts.push(piece);
      lineBytes += piece.length;
      if (!overflow) summary.maxHeldBytes = Math.max(summary.maxHeldBytes ?? 0, lineBytes);
      if (newline < 0) break;
      const done = finishLine();
      parts = [];
      lineBytes = 0;
      overflow = false;
      if (done) yield done;
      start = newline + 1;
    }
  }
  if (lineBytes > 0 || overflow) {
    const done = finishLine();
    if (done) yield done;
  }
}
