/**
 * Reads a dataset file into rows ({ line, value }) by its extension: .jsonl (streamed, line by line), .json,
 * .csv / .tsv, .parquet, .txt. Encoding problems and syntax errors become problems with their lines; nothing
 * here knows about formats (formats.ts turns values into chat records).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseJson, columnAt } from './json-errors.ts';
import { readCsvRows } from './read-csv.ts';
import { readJsonRecords, type SourceRow } from './read-json.ts';
import { readTextLines, type ReadLinesSummary } from './read-lines.ts';
import { readParquetRows } from './read-parquet.ts';
import { readTextRows, type TextSplit } from './read-text.ts';
import type { ProblemLog } from './problems.ts';
import { decodeUtf8, findInvalidUtf8Lines, formatMiB, hasUtf8Bom, NOT_UTF8, utf16Bom } from './utf8.ts';

export type FileKind = 'jsonl' | 'json' | 'csv' | 'tsv' | 'parquet' | 'txt';

export const FILE_KINDS: Readonly<Record<string, FileKind>> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.json': 'json',
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.parquet': 'parquet',
  '.txt': 'txt',
  '.text': 'txt',
  '.md': 'txt',
};

export interface ReadFileOptions {
  /** Longest line of a .jsonl file, in bytes (default 16 MiB). */
  readonly maxLineBytes?: number;
  /** Largest .json / .csv / .txt file read whole (default 512 MiB; use .jsonl beyond). */
  readonly maxFileBytes?: number;
  /** .txt: one example per paragraph (default) or per line. */
  readonly textSplit?: TextSplit;
  /** .csv: the field separator (default ','; .tsv files: tab). */
  readonly csvDelimiter?: string;
}

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024;

export interface FileRows {
  readonly kind: FileKind | undefined;
  readonly rows: SourceRow[];
  readonly bytes: number;
}

export const fileKindOf = (path: string): FileKind | undefined => FILE_KINDS[extname(path).toLowerCase()];

/** One JSON value per line of an in-memory text (a .json file that is really JSON Lines). */
const jsonLinesOfText = (text: string, log: ProblemLog): SourceRow[] => {
  const rows: SourceRow[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const parsed = parseJson(line);
    if (parsed.ok) rows.push({ line: i + 1, value: parsed.value });
    else {
      const { message, offset } = parsed.problem;
      log.error(i + 1, offset === undefined ? message : `${message} (column ${columnAt(line, offset)})`);
    }
  });
  return rows;
};

const readJsonLinesFile = async (path: string, log: ProblemLog, maxLineBytes: number): Promise<FileRows> => {
  const rows: SourceRow[] = [];
  const summary: ReadLinesSummary = { lines: 0, bytes: 0 };
  for await (const { line, text } of readTextLines(path, log, { maxLineBytes }, summary)) {
    const parsed = parseJson(text);
    if (parsed.ok) rows.push({ line, value: parsed.value });
    else {
      const { message, offset } = parsed.problem;
      log.error(line, offset === undefined ? message : `${message} (column ${columnAt(text, offset)})`);
    }
  }
  if (rows.length === 0 && log.problems.length === 0) log.error(1, summary.bytes === 0 ? 'the file is empty' : 'the file has only blank lines');
  return { kind: 'jsonl', rows, bytes: summary.bytes };
};

/** The whole file as text: strict UTF-8, BOM dropped; undefined (with problems logged) when it cannot be. */
const readWholeText = async (path: string, log: ProblemLog, maxFileBytes: number): Promise<{ text?: string; bytes: number }> => {
  const size = (await stat(path)).size;
  if (size > maxFileBytes) {
    log.error(1, `the file is ${formatMiB(size)}, over the ${formatMiB(maxFileBytes)} read whole; convert it to JSON Lines (.jsonl), which is streamed`);
    return { bytes: size };
  }
  let bytes: Uint8Array = await readFile(path);
  if (bytes.length === 0) {
    log.error(1, 'the file is empty');
    return { bytes: 0 };
  }
  const utf16 = utf16Bom(bytes);
  if (utf16) {
    log.error(1, `the file is ${utf16} text (it starts with a UTF-16 byte-order mark); save it as UTF-8`);
    return { bytes: bytes.length };
  }
  if (hasUtf8Bom(bytes)) bytes = bytes.subarray(3);
  const text = decodeUtf8(bytes);
  if (text === undefined) {
    const bad = findInvalidUtf8Lines(bytes);
    for (const line of bad.lines) log.error(line, NOT_UTF8);
    if (bad.total > bad.lines.length) log.error(bad.lines.at(-1) ?? 1, `... and ${bad.total - bad.lines.length} more lines that are not UTF-8`);
    return { bytes: bytes.length };
  }
  if (text.trim() === '') {
    log.error(1, 'the file is empty (only whitespace)');
    return { bytes: bytes.length };
  }
  return { text, bytes: bytes.length };
};

/** Reads `path` into rows, by its extension. */
export const readDatasetFile = async (path: string, log: ProblemLog, options: ReadFileOptions = {}): Promise<FileRows> => {
  const kind = fileKindOf(path);
  try {
    const info = await stat(path);
    if (!info.isFile()) {
      log.error(1, 'not a file');
      return { kind, rows: [], bytes: 0 };
    }
  } catch (err) {
    log.error(1, `cannot read the file: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (err as Error).message}`);
    return { kind, rows: [], bytes: 0 };
  }
  if (kind === undefined) {
    log.error(1, `unknown file type '${extname(path) || '(no extension)'}' (datasets are .jsonl, .json, .csv, .tsv, .parquet or .txt)`);
    return { kind, rows: [], bytes: 0 };
  }
  if (kind === 'jsonl') return readJsonLinesFile(path, log, options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
  if (kind === 'parquet') {
    const rows = await readParquetRows(path, log);
    return { kind, rows, bytes: (await stat(path)).size };
  }
  const { text, bytes } = await readWholeText(path, log, options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES);
  if (text === undefined) return { kind, rows: [], bytes };
  switch (kind) {
    case 'json':
      return { kind, rows: readJsonRecords(text, log, (t) => jsonLinesOfText(t, log)), bytes };
    case 'csv':
    case 'tsv':
      return { kind, rows: readCsvRows(text, log, { delimiter: options.csvDelimiter ?? (kind === 'tsv' ? '\t' : ',') }), bytes };
    case 'txt':
      return { kind, rows: readTextRows(text, options.textSplit ?? 'paragraphs'), bytes };
  }
};
