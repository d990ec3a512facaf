// The API contract's requests for datasets: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; dataset-handlers.ts implements them.
//
// A dataset lives in the store as versions of rows (the rows as the file had them: Alpaca objects, {messages},
// ...); every edit is a new version, undo/redo/checkout move the head. Requests that read a version take
// `versionId` (default: the head). Problems are the dataset layer's own validation of the version, written out as
// JSON Lines, so a row's 1-based `index` is the line training reports for it.
import * as v from 'valibot';
import type { Dataset, DatasetVersion, JsonValue, UndoState } from '../store/index.ts';
import type { DatasetProblem, TokenStats } from '../train/dataset/index.ts';
import { id, nonNegativeInt, path, positiveInt } from './contract-schemas.ts';

/** The formats the dataset layer reads ('openai' is the {"messages": [...]} format); 'auto' detects. */
export const DATASET_FORMAT_CHOICES = ['auto', 'openai', 'sharegpt', 'alpaca', 'prompt-completion', 'text'] as const;

const versionRef = { id, versionId: v.optional(id) };
const trainOn = v.optional(v.picklist(['assistant', 'all']));
const maxLength = v.optional(v.pipe(v.number(), v.integer('must be an integer'), v.minValue(2, 'must be at least 2')));
const text = v.pipe(v.string(), v.minLength(1, 'must not be empty'));

export const DATASET_REQUESTS = {
  /**
   * The version as a JSON Lines file a run config's dataset.path can point at: <dataDir>/datasets/<id>/v<number>.jsonl,
   * written once (versions never change) and reused after.
   */
  'datasets.file': v.object(versionRef),
  /**
   * Imports a file of any format the CLI reads, by path (the desktop app) or by content (a browser never reveals a
   * dropped file's path): text as a string, binary (Parquet) as base64. fileName's extension says how to read it.
   * A file that cannot be read (a malformed JSON line, bad quoting, not UTF-8) is refused, naming the file and line;
   * rows that read but break their format are imported and shown as problems.
   */
  'datasets.import': v.pipe(
    v.object({
      path: v.optional(path),
      content: v.optional(v.string()),
      encoding: v.optional(v.picklist(['text', 'base64'])),
      fileName: v.optional(text),
      name: v.optional(text),
      format: v.optional(v.picklist(DATASET_FORMAT_CHOICES)),
      /** .txt files: one row per paragraph (default) or per line. */
      textSplit: v.optional(v.picklist(['paragraphs', 'lines'])),
    }),
    v.forward(
      v.partialCheck([['path'], ['content']], (i) => (i.path === undefined) !== (i.content === undefined), 'give either path or content, not both'),
      ['path'],
    ),
    v.forward(
      v.partialCheck([['content'], ['fileName']], (i) => i.content === undefined || i.fileName !== undefined, 'content needs the file name (its extension says how to read it)'),
      ['fileName'],
    ),
  ),
  /** A dataset with its versions (oldest first), the head and what undo/redo can do. */
  'datasets.show': v.object({ id }),
  /**
   * A page of a version's rows, with each row's problems. `search` matches the rows' text (case-insensitive,
   * every word); `filter` keeps rows with problems (any) or errors only.
   */
  'datasets.rows': v.object({
    ...versionRef,
    offset: v.optional(nonNegativeInt),
    limit: v.optional(v.pipe(positiveInt, v.maxValue(1000, 'must be at most 1000'))),
    search: v.optional(v.string()),
    filter: v.optional(v.picklist(['all', 'problems', 'errors'])),
  }),
  /** Every problem of a version, each with its row's key and index. */
  'datasets.problems': v.object(versionRef),
  /** One edit (rows added at the end, rows replaced by key, rows deleted by key) = one new version, the head. */
  'datasets.edit': v.object({
    id,
    insert: v.optional(v.array(v.unknown())),
    update: v.optional(v.array(v.object({ key: positiveInt, row: v.unknown() }))),
    delete: v.optional(v.array(positiveInt)),
    message: v.optional(text),
  }),
  'datasets.undo': v.object({ id }),
  'datasets.redo': v.object({ id }),
  /** Makes an older (or any) version the head. */
  'datasets.checkout': v.object({ id, versionId: id }),
  'datasets.delete': v.object({ id }),
  /** One row through the model's chat template: its tokens, those trained on marked (training's own mask). */
  'datasets.preview': v.object({ ...versionRef, key: positiveInt, model: path, trainOn }),
  /** Token lengths of the version's examples with the model's tokenizer (as training tokenizes, untruncated). */
  'datasets.histogram': v.object({ ...versionRef, model: path, trainOn, maxLength, bins: v.optional(v.pipe(positiveInt, v.maxValue(200))) }),
  /**
   * The train/eval split training would make (the same loading, tokenization and seeded split). Without a model
   * the split is over the version's usable records, which equals training's unless examples are dropped or split.
   */
  'datasets.split': v.object({
    ...versionRef,
    evalFraction: v.pipe(v.number(), v.minValue(0, 'must be at least 0'), v.maxValue(0.999999, 'must be below 1')),
    seed: v.optional(v.pipe(v.number(), v.integer('must be an integer'))),
    model: v.optional(path),
    trainOn,
    maxLength,
  }),
  /** The version as JSON Lines: written to `path`, or (no path) returned as content for a download. */
  'datasets.export': v.object({ ...versionRef, path: v.optional(path) }),
} as const;

/** Requests whose work stops on jobs.cancel (for api-contract.ts's CANCELLABLE). */
export const DATASET_CANCELLABLE = ['datasets.histogram', 'datasets.split'] as const;

export interface DatasetDetails {
  readonly dataset: Dataset;
  /** Oldest first. */
  readonly versions: readonly DatasetVersion[];
  readonly head: DatasetVersion;
  readonly undo: UndoState;
}

export interface DatasetRowProblem {
  readonly line: number;
  readonly message: string;
  readonly severity: DatasetProblem['severity'];
}

export interface DatasetTableRow {
  readonly key: number;
  /** 1-based position in the version (the line training reports for it). */
  readonly index: number;
  readonly row: JsonValue;
  readonly problems: readonly DatasetRowProblem[];
}

export interface ProblemSummary {
  /** The format the version is read as, and why. */
  readonly format: string | undefined;
  readonly evidence: string;
  readonly errors: number;
  readonly warnings: number;
  /** Usable records (checked, duplicates left out), as training reads them. */
  readonly records: number;
}

export interface DatasetRowsPage {
  readonly versionId: number;
  /** Rows matching the search and filter (all rows without them). */
  readonly total: number;
  readonly offset: number;
  readonly rows: readonly DatasetTableRow[];
  /** The version's top-level fields, in order of first appearance. */
  readonly columns: readonly string[];
  readonly summary: ProblemSummary;
}

export interface DatasetProblems extends ProblemSummary {
  readonly versionId: number;
  readonly problems: readonly (DatasetRowProblem & { readonly key: number | null; readonly index: number })[];
}

export interface DatasetChange extends DatasetDetails {
  /** The version the edit, undo, redo or checkout made the head. */
  readonly version: DatasetVersion;
}

export interface DatasetImport extends DatasetChange {
  readonly summary: ProblemSummary;
}

export interface PreviewToken {
  readonly id: number;
  /** The token's characters in the rendered text (every character belongs to exactly one token). */
  readonly text: string;
  readonly trained: boolean;
}

export interface DatasetPreview {
  readonly versionId: number;
  readonly key: number;
  readonly index: number;
  /** The row as rendered through the chat template (raw text rows: the text itself). */
  readonly text: string;
  readonly tokens: readonly PreviewToken[];
  /** Tokens carrying loss (training's count: past the first position). */
  readonly trainedTokens: number;
}

export interface HistogramBin {
  /** Token lengths from `from` to `to` inclusive. */
  readonly from: number;
  readonly to: number;
  readonly count: number;
}

export interface DatasetHistogram {
  readonly versionId: number;
  readonly bins: readonly HistogramBin[];
  readonly stats: TokenStats;
  /** Examples longer than maxLength (when given): training truncates or drops them. */
  readonly overMaxLength?: number;
  /** Rows the template could not render or whose format is broken (see the problems). */
  readonly skipped: number;
}

export interface DatasetSplit {
  readonly versionId: number;
  /** 'examples': tokenized as training does (a model was given); 'records': the usable records. */
  readonly basis: 'examples' | 'records';
  readonly train: number;
  readonly eval: number;
  /** Keys of the rows held out (a row split into several examples counts once). */
  readonly evalKeys: readonly number[];
  /** Errors in the version: training refuses it until they are fixed (the counts are over the usable rows). */
  readonly errors: number;
}

export interface DatasetExport {
  readonly rows: number;
  readonly bytes: number;
  /** Where it was written (with a path). */
  readonly path?: string;
  /** The JSON Lines text (without a path). */
  readonly content?: string;
  /** A file name to save the content under. */
  readonly fileName: string;
}

export interface DatasetResults {
  'datasets.file': { readonly path: string; readonly format: string; readonly rows: number };
  'datasets.import': DatasetImport;
  'datasets.show': DatasetDetails;
  'datasets.rows': DatasetRowsPage;
  'datasets.problems': DatasetProblems;
  'datasets.edit': DatasetChange;
  'datasets.undo': DatasetChange;
  'datasets.redo': DatasetChange;
  'datasets.checkout': DatasetChange;
  'datasets.delete': { readonly deleted: number };
  'datasets.preview': DatasetPreview;
  'datasets.histogram': DatasetHistogram;
  'datasets.split': DatasetSplit;
  'datasets.export': DatasetExport;
}

/** Progress of the requests that tokenize a whole version. */
export interface DatasetProgress {
  readonly phase: 'reading' | 'tokenizing';
  readonly done: number;
  readonly total: number;
}

export interface DatasetEvents {
  'datasets.histogram': DatasetProgress;
  'datasets.split': DatasetProgress;
}
