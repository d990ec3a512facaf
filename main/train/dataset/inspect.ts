/**
 * What `peft-studio dataset inspect FILE` prints and what training checks before it starts: format (and why),
 * rows, statistics, token statistics when a tokenizer is given, and every problem as `FILE:LINE: message`.
 * A dataset is usable when it has no errors and at least one example.
 */
import type { Tokenizer } from '../../models/tokenizer/index.ts';
import { loadDataset, type DatasetStats, type LoadDatasetOptions, type LoadedDataset } from './load.ts';
import { assertNoErrors, isError, sortProblems, type DatasetProblem } from './problems.ts';
import type { FileKind } from './read-file.ts';
import type { DatasetFormat } from './records.ts';
import type { TokenStats } from './token-stats.ts';
import { tokenizeDataset, type TokenizedDataset, type TokenizeOptions } from './tokenize.ts';

export interface InspectOptions extends LoadDatasetOptions {
  /** With a tokenizer, the records are also rendered and tokenized (template errors, token statistics). */
  readonly tokenizer?: Tokenizer;
  readonly tokenize?: Omit<TokenizeOptions, 'file'>;
}

export interface DatasetInspection {
  readonly file: string;
  readonly usable: boolean;
  readonly fileKind: FileKind | undefined;
  readonly format: DatasetFormat | undefined;
  /** Why this format: how many records have its fields, or that it was chosen. */
  readonly evidence: string;
  /** Records read from the file. */
  readonly rows: number;
  readonly stats: DatasetStats;
  readonly tokens?: TokenStats;
  readonly errors: number;
  readonly warnings: number;
  readonly problems: DatasetProblem[];
}

export const inspectDataset = async (file: string, options: InspectOptions = {}): Promise<DatasetInspection> => {
  const loaded = await loadDataset(file, options);
  let problems = loaded.problems;
  let tokenized: TokenizedDataset | undefined;
  if (options.tokenizer && loaded.records.length > 0) {
    tokenized = tokenizeDataset(loaded.records, options.tokenizer, { ...options.tokenize, file: loaded.file });
    problems = sortProblems([...problems, ...tokenized.problems]);
  }
  const errors = problems.filter(isError).length;
  const examples = tokenized ? tokenized.stats.examples : loaded.records.length;
  return {
    file: loaded.file,
    usable: errors === 0 && examples > 0,
    fileKind: loaded.fileKind,
    format: loaded.format,
    evidence: loaded.detection.evidence,
    rows: loaded.stats.rows,
    stats: loaded.stats,
    ...(tokenized ? { tokens: tokenized.stats } : {}),
    errors,
    warnings: problems.length - errors,
    problems,
  };
};

export interface PreparedDataset {
  readonly loaded: LoadedDataset;
  readonly tokenized: TokenizedDataset;
  /** Warnings of both steps (errors throw). */
  readonly warnings: DatasetProblem[];
}

/**
 * Load + tokenize for training: throws DatasetError listing every error as `FILE:LINE: message` (the same lines
 * `inspectDataset` reports), or when no example is left.
 */
export const prepareDataset = async (file: string, tokenizer: Tokenizer, options: LoadDatasetOptions & { tokenize?: Omit<TokenizeOptions, 'file'> } = {}): Promise<PreparedDataset> => {
  const loaded = await loadDataset(file, options);
  assertNoErrors(loaded.problems, loaded.file);
  const tokenized = tokenizeDataset(loaded.records, tokenizer, { ...options.tokenize, file: loaded.file });
  assertNoErrors(tokenized.problems, loaded.file);
  if (tokenized.examples.length === 0) {
    assertNoErrors([{ file: loaded.file, line: 1, message: 'no example is left to train on (see the warnings)', severity: 'error' }], loaded.file);
  }
  return { loaded, tokenized, warnings: sortProblems([...loaded.problems, ...tokenized.problems]) };
};
