/**
 * Parquet datasets through hyparquet (pure JS: snappy built in; gzip, zstd and brotli pages are reported, not
 * read). Each row becomes an object (nested lists and structs as arrays and objects, as pyarrow / HF datasets
 * write chat columns); a row's "line" is its 1-based row number.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';
import type { SourceRow } from './read-json.ts';
import type { ProblemLog } from './problems.ts';

/** Plain JSON-like values: bigints that fit become numbers, typed arrays become lists. */
const plain = (value: unknown): unknown => {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (Array.isArray(value)) return value.map(plain);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = plain(v);
    return out;
  }
  return value;
};

export const readParquetRows = async (path: string, log: ProblemLog): Promise<SourceRow[]> => {
  let rows: Record<string, unknown>[];
  try {
    const file = await asyncBufferFromFile(path);
    if (file.byteLength === 0) {
      log.error(1, 'the file is empty');
      return [];
    }
    const metadata = await parquetMetadataAsync(file);
    rows = await parquetReadObjects({ file, metadata });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    log.error(1, `cannot read this Parquet file: ${reason}`);
    return [];
  }
  if (rows.length === 0) log.error(1, 'the Parquet file has no rows');
  return rows.map((row, i) => ({ line: i + 1, value: plain(row) }));
};
