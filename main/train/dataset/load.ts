/**
 * loadDataset: a file → normalised records (chat conversations or raw text), the format (chosen or detected,
 * with its evidence), every problem with its line, and statistics. Exact duplicates (after normalisation) are
 * warnings and are left out unless kept; a file whose records are all one record repeated is an error.
 */
import { detectFormat, formatOfValue, type FormatDetection } from './detect-format.ts';
import { normalizeValue } from './normalize.ts';
import { ProblemLog, sortProblems, type DatasetProblem } from './problems.ts';
import { readDatasetFile, type FileKind, type ReadFileOptions } from './read-file.ts';
import type { SourceRow } from './read-json.ts';
import { FORMAT_SIGNATURES, recordKey, type ChatRole, type DatasetFormat, type DatasetRecord } from './records.ts';

export interface LoadDatasetOptions extends ReadFileOptions {
  /** The format, or 'auto' / undefined to detect it from the records' fields. */
  readonly format?: DatasetFormat | 'auto';
  /** Keep exact duplicates (still warned about); default: keep the first only. */
  readonly keepDuplicates?: boolean;
  /** The file name shown in problems (default: the path as given). */
  readonly displayName?: string;
}

export interface DatasetStats {
  /** Records read from the file (each JSON value, CSV row, Parquet row, text paragraph or line). */
  readonly rows: number;
  /** Usable records: checked, duplicates left out. */
  readonly records: number;
  /** Rows left out for errors. */
  readonly invalid: number;
  readonly duplicates: number;
  readonly conversations: number;
  readonly texts: number;
  /** Messages per role over all conversations. */
  readonly messages: Readonly<Record<ChatRole, number>>;
  /** Messages per conversation. */
  readonly turns: { readonly mean: number; readonly max: number };
  /** Characters per record (all message contents, or the text). */
  readonly chars: { readonly mean: number; readonly max: number };
  readonly bytes: number;
}

export interface LoadedDataset {
  readonly file: string;
  readonly fileKind: FileKind | undefined;
  readonly format: DatasetFormat | undefined;
  readonly detection: FormatDetection;
  readonly records: DatasetRecord[];
  readonly problems: DatasetProblem[];
  readonly stats: DatasetStats;
}

const recordChars = (r: DatasetRecord): number =>
  r.kind === 'text' ? r.text.length : r.messages.reduce((n, m) => n + m.content.length, 0);

const computeStats = (records: readonly DatasetRecord[], rows: number, invalid: number, duplicates: number, bytes: number): DatasetStats => {
  const messages: Record<ChatRole, number> = { system: 0, user: 0, assistant: 0, tool: 0 };
  let turns = 0;
  let maxTurns = 0;
  let chars = 0;
  let maxChars = 0;
  let conversations = 0;
  for (const r of records) {
    const c = recordChars(r);
    chars += c;
    maxChars = Math.max(maxChars, c);
    if (r.kind === 'chat') {
      conversations++;
      turns += r.messages.length;
      maxTurns = Math.max(maxTurns, r.messages.length);
      for (const m of r.messages) messages[m.role]++;
    }
  }
  const mean = (total: number, n: number): number => (n ? total / n : 0);
  return {
    rows,
    records: records.length,
    invalid,
    duplicates,
    conversations,
    texts: records.length - conversations,
    messages,
    turns: { mean: mean(turns, conversations), max: maxTurns },
    chars: { mean: mean(chars, records.length), max: maxChars },
    bytes,
  };
};

/** Reads, detects, normalises and de-duplicates a dataset file. Never throws for bad data: see `problems`. */
export const loadDataset = async (file: string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> => {
  const log = new ProblemLog(options.displayName ?? file);
  const { kind, rows, bytes } = await readDatasetFile(file, log, options);
  return loadRows(rows, log, { ...options, fileKind: kind, bytes });
};

/**
 * What loadDataset does once the file is read: detect, normalise and de-duplicate rows already in memory (a stored
 * dataset version: the editor checks it with exactly the rules training applies). `log` holds the reading problems.
 */
export const loadRows = (
  rows: readonly SourceRow[],
  log: ProblemLog,
  options: Pick<LoadDatasetOptions, 'format' | 'keepDuplicates'> & { readonly fileKind?: FileKind | undefined; readonly bytes?: number } = {},
): LoadedDataset => {
  const { fileKind: kind, bytes = 0 } = options;
  const chosen = options.format === 'auto' ? undefined : options.format;
  const detection = detectFormat(
    rows.map((r) => r.value),
    chosen,
  );
  const format = detection.format;
  const records: DatasetRecord[] = [];
  const firstLineOf = new Map<string, number>();
  let invalid = 0;
  let duplicates = 0;
  for (const row of rows) {
    const looksLike = formatOfValue(row.value);
    if (format === undefined || looksLike === undefined) {
      const fields = row.value && typeof row.value === 'object' && !Array.isArray(row.value) ? Object.keys(row.value) : [];
      const expected = format ? FORMAT_SIGNATURES[format] : 'messages, conversations, instruction/output, prompt/completion or text';
      log.error(
        row.line,
        fields.length
          ? `no known format: the record's fields are ${fields.slice(0, 8).map((f) => `"${f}"`).join(', ')} (expected ${expected})`
          : `a record must be an object with fields (${expected}), got ${Array.isArray(row.value) ? 'a list' : JSON.stringify(row.value)?.slice(0, 40) ?? 'nothing'}`,
      );
      invalid++;
      continue;
    }
    if (looksLike !== format && !detection.chosen) {
      log.error(row.line, `mixed formats: this record is ${looksLike} (${FORMAT_SIGNATURES[looksLike]}) but the file is ${detection.evidence}`);
      invalid++;
      continue;
    }
    const normalized = normalizeValue(row.value, format, row.line);
    const hint = looksLike !== format ? ` (this record looks like ${looksLike})` : '';
    for (const w of normalized.warnings) log.warning(row.line, w);
    for (const e of normalized.errors) log.error(row.line, `${e}${hint}`);
    if (!normalized.record) {
      invalid++;
      continue;
    }
    const key = recordKey(normalized.record);
    const first = firstLineOf.get(key);
    if (first !== undefined) {
      duplicates++;
      log.warning(row.line, `exact duplicate of the record at line ${first} (after normalisation); ${options.keepDuplicates ? 'kept' : 'left out'}`);
      if (!options.keepDuplicates) continue;
    } else firstLineOf.set(key, row.line);
    records.push(normalized.record);
  }
  if (firstLineOf.size === 1 && duplicates > 0) {
    const line = firstLineOf.values().next().value ?? 1;
    log.error(line, `every record of the file is this one (${duplicates + 1} copies): a single distinct example to train on`);
  }
  if (records.length === 0 && log.errorCount === 0) log.error(1, 'the file has no records');
  return {
    file: log.file,
    fileKind: kind,
    format,
    detection,
    records,
    problems: sortProblems(log.problems),
    stats: computeStats(records, rows.length, invalid, duplicates, bytes),
  };
};
