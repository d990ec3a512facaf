/**
 * What is wrong with a dataset, where: every reader, format check and tokenization step reports problems as
 * `{ file, line, message, severity }` with 1-based line numbers (a .json array: the line where the record starts;
 * CSV: the physical line where the row starts; Parquet: the row number), printed as `FILE:LINE: message`.
 * Errors make a dataset unusable (training refuses it); warnings (duplicates, dropped over-long examples) do not.
 */

export type ProblemSeverity = 'error' | 'warning';

export interface DatasetProblem {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  readonly message: string;
  readonly severity: ProblemSeverity;
}

/** A dataset cannot be read or used at all; `problems` says why, each with its line. */
export class DatasetError extends Error {
  override readonly name: string = 'DatasetError';
  constructor(
    message: string,
    readonly problems: readonly DatasetProblem[] = [],
  ) {
    super(message);
  }
}

/** `FILE:LINE: message` (warnings: `FILE:LINE: warning: message`), the form editors and CI logs link. */
export const formatProblem = (p: DatasetProblem): string =>
  `${p.file}:${p.line}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;

export const isError = (p: DatasetProblem): boolean => p.severity === 'error';

/** Collects the problems of one file, so readers need not repeat its name. */
export class ProblemLog {
  readonly problems: DatasetProblem[] = [];
  constructor(readonly file: string) {}

  error(line: number, message: string): void {
    this.problems.push({ file: this.file, line: Math.max(1, line), message, severity: 'error' });
  }

  warning(line: number, message: string): void {
    this.problems.push({ file: this.file, line: Math.max(1, line), message, severity: 'warning' });
  }

  get errorCount(): number {
    return this.problems.filter(isError).length;
  }
}

/** Problems in file order (stable: problems of one line keep the order they were found in). */
export const sortProblems = (problems: readonly DatasetProblem[]): DatasetProblem[] =>
  problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.i - b.i)
    .map(({ p }) => p);

/**
 * Throws a DatasetError listing every error (as `FILE:LINE: message`) when there is one: what the trainer calls
 * before it starts, so a run refuses exactly what `dataset inspect` flags.
 */
export const assertNoErrors = (problems: readonly DatasetProblem[], what = 'the dataset'): void => {
  const errors = problems.filter(isError);
  if (errors.length === 0) return;
  const shown = errors.slice(0, 20).map(formatProblem);
  const more = errors.length > shown.length ? `\n... and ${errors.length - shown.length} more` : '';
  throw new DatasetError(`${what} has ${errors.length} error${errors.length === 1 ? '' : 's'}:\n${shown.join('\n')}${more}`, errors);
};

/** A value's type in words, for "wrong type" messages: "a number", "a list", "null", ... */
export const describeType = (value: unknown): string => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'text';
    case 'number':
    case 'bigint':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof value;
  }
};

/** `text` cut to `max` characters for quoting in a message, newlines shown as \n. */
export const quoteSnippet = (text: string, max = 40): string => {
  const flat = text.replace(/\r?\n/g, '\\n');
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max)}…` : flat);
};
