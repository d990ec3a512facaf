// What the dataset layer says about one stored version, computed once per version (versions never change) and kept
// for the few most recent: its rows checked by loadRows, the same detection, normalisation and duplicate rules
// loadDataset applies after reading a file, with the version's rows as lines (line = position + 1), so a row's
// problems are the ones training reports for that line of the version's JSON Lines file. An edit's version is
// derived from its parent's cached rows instead of reading the whole version back. Search and paging run over it.
import type { Dataset, DatasetVersion, JsonValue, Store } from '../store/index.ts';
import { DATASET_FORMATS, isError, type DatasetFormat, type LoadedDataset } from '../train/dataset/index.ts';
import { loadRows } from '../train/dataset/load.ts';
import { ProblemLog } from '../train/dataset/problems.ts';
import type { DatasetProblems, DatasetRowProblem, DatasetRowsPage, DatasetTableRow, ProblemSummary } from './dataset-contract.ts';
import { versionOf } from './datasets-files.ts';

export interface VersionIndex {
  readonly datasetId: number;
  readonly versionId: number;
  readonly versionNumber: number;
  /** The format the rows are read as (the dataset's, when the dataset layer knows it). */
  readonly format: DatasetFormat | undefined;
  readonly loaded: LoadedDataset;
  /** Row keys in line order (line = position + 1). */
  readonly keys: readonly number[];
  readonly rows: readonly JsonValue[];
  readonly positionOf: ReadonlyMap<number, number>;
  readonly problemsAt: ReadonlyMap<number, DatasetRowProblem[]>;
  readonly columns: readonly string[];
  readonly summary: ProblemSummary;
  /** Each row's searchable text (its strings and numbers, lower case), made on the first search. */
  searchText(): readonly string[];
}

/** A version's rows in key order. */
export interface VersionRows {
  readonly keys: readonly number[];
  readonly rows: readonly JsonValue[];
}

/** Versions kept per store: the head and the ones just before it (undo, checkout) are what gets read again. */
const KEPT_VERSIONS = 4;
const indexes = new WeakMap<Store, Map<number, VersionIndex>>();

export const knownFormat = (format: string): DatasetFormat | undefined =>
  (DATASET_FORMATS as readonly string[]).includes(format) ? (format as DatasetFormat) : undefined;

const leafTexts = (value: JsonValue, out: string[]): void => {
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'boolean') out.push(String(value));
  else if (Array.isArray(value)) for (const v of value as readonly JsonValue[]) leafTexts(v, out);
  else if (value !== null) for (const v of Object.values(value)) leafTexts(v, out);
};

const columnsOf = (rows: readonly JsonValue[]): string[] => {
  const seen = new Set<string>();
  for (const row of rows) {
    if (row !== null && typeof row === 'object' && !Array.isArray(row)) for (const k of Object.keys(row)) seen.add(k);
  }
  return [...seen];
};

const buildIndex = (dataset: Dataset, version: DatasetVersion, { keys, rows }: VersionRows): VersionIndex => {
  const log = new ProblemLog(`${dataset.name} v${version.number}`);
  const loaded = loadRows(
    rows.map((value, i) => ({ line: i + 1, value })),
    log,
    { format: knownFormat(dataset.format) ?? 'auto' },
  );
  const problemsAt = new Map<number, DatasetRowProblem[]>();
  for (const p of loaded.problems) {
    const at = Math.min(p.line, Math.max(rows.length, 1)) - 1;
    const list = problemsAt.get(at) ?? [];
    list.push({ line: p.line, message: p.message, severity: p.severity });
    problemsAt.set(at, list);
  }
  const errors = loaded.problems.filter(isError).length;
  let texts: string[] | undefined;
  return {
    datasetId: dataset.id,
    versionId: version.id,
    versionNumber: version.number,
    format: loaded.format,
    loaded,
    keys,
    rows,
    positionOf: new Map(keys.map((k, i) => [k, i])),
    problemsAt,
    columns: columnsOf(rows),
    summary: { format: loaded.format, evidence: loaded.detection.evidence, errors, warnings: loaded.problems.length - errors, records: loaded.records.length },
    searchText: () =>
      (texts ??= rows.map((row) => {
        const out: string[] = [];
        leafTexts(row, out);
        return out.join('\n').toLowerCase();
      })),
  };
};

const keep = (store: Store, index: VersionIndex): VersionIndex => {
  let kept = indexes.get(store);
  if (!kept) indexes.set(store, (kept = new Map()));
  kept.delete(index.versionId); // re-inserted: most recent last
  kept.set(index.versionId, index);
  while (kept.size > KEPT_VERSIONS) kept.delete(kept.keys().next().value!);
  return index;
};

/** The cached index of a version, if any. */
export const cachedIndex = (store: Store, versionId: number): VersionIndex | undefined => indexes.get(store)?.get(versionId);

/** The index of a version (default: the head), built on first use. */
export const versionIndex = (store: Store, datasetId: number, versionId?: number): VersionIndex => {
  const { dataset, version } = versionOf(store, datasetId, versionId);
  const cached = cachedIndex(store, version.id);
  if (cached) return keep(store, cached);
  const stored = store.datasets.rows(version.id);
  return keep(store, buildIndex(dataset, version, { keys: stored.map((r) => r.key), rows: stored.map((r) => r.row) }));
};

/** Indexes a version whose rows the caller has already (an import, an edit derived from its parent). */
export const indexRows = (store: Store, datasetId: number, versionId: number, rows: VersionRows): VersionIndex => {
  const { dataset, version } = versionOf(store, datasetId, versionId);
  if (rows.keys.length !== version.rowCount) return versionIndex(store, datasetId, versionId);
  return keep(store, buildIndex(dataset, version, rows));
};

export interface RowQuery {
  readonly offset?: number;
  readonly limit?: number;
  readonly search?: string;
  readonly filter?: 'all' | 'problems' | 'errors';
}

export const DEFAULT_PAGE = 50;

/** The positions of the rows matching a search (every word, case-insensitive) and a problem filter. */
const matching = (index: VersionIndex, query: RowQuery): number[] | undefined => {
  const words = (query.search ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const filter = query.filter ?? 'all';
  if (words.length === 0 && filter === 'all') return undefined;
  const texts = words.length ? index.searchText() : [];
  const out: number[] = [];
  for (let p = 0; p < index.rows.length; p++) {
    if (filter !== 'all') {
      const problems = index.problemsAt.get(p);
      if (!problems || (filter === 'errors' && !problems.some((x) => x.severity === 'error'))) continue;
    }
    if (words.length && !words.every((w) => texts[p]!.includes(w))) continue;
    out.push(p);
  }
  return out;
};

export const rowsPage = (index: VersionIndex, query: RowQuery): DatasetRowsPage => {
  const positions = matching(index, query);
  const total = positions?.length ?? index.rows.length;
  const offset = query.offset ?? 0;
  const end = Math.min(total, offset + (query.limit ?? DEFAULT_PAGE));
  const rows: DatasetTableRow[] = [];
  for (let i = offset; i < end; i++) {
    const p = positions ? positions[i]! : i;
    rows.push({ key: index.keys[p]!, index: p + 1, row: index.rows[p]!, problems: index.problemsAt.get(p) ?? [] });
  }
  return { versionId: index.versionId, total, offset, rows, columns: index.columns, summary: index.summary };
};

export const problemList = (index: VersionIndex): DatasetProblems => ({
  versionId: index.versionId,
  ...index.summary,
  problems: [...index.problemsAt]
    .sort(([a], [b]) => a - b)
    .flatMap(([p, list]) => list.map((x) => ({ ...x, key: index.keys[p] ?? null, index: p + 1 }))),
});
