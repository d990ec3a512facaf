// Small helpers every table store uses: a clock, not-found checks, input checks.
import { StoreError } from './errors.ts';

/** Milliseconds since the epoch; every *_at column and metric time uses it. Injected for tests. */
export type Clock = () => number;

/** `row`, or StoreError 'not-found' saying which `what` (e.g. 'run 7') does not exist. */
export const found = <T>(row: T | undefined, what: string): T => {
  if (row === undefined) throw new StoreError('not-found', `${what} does not exist`);
  return row;
};

export const checkText = (value: string, what: string): string => {
  if (typeof value !== 'string' || value.trim() === '') throw new StoreError('invalid-input', `${what} must be a non-empty string`);
  return value;
};

export const checkCount = (value: number, what: string): number => {
  if (!Number.isSafeInteger(value) || value < 0) throw new StoreError('invalid-input', `${what} must be an integer ≥ 0, got ${value}`);
  return value;
};

export const checkOneOf = <T extends string>(value: T, allowed: readonly T[], what: string): T => {
  if (!allowed.includes(value)) throw new StoreError('invalid-input', `${what} must be one of ${allowed.join(', ')}, got '${value}'`);
  return value;
};

/** SQLite wants 0/1; the API speaks booleans. */
export const bit = (value: boolean): 0 | 1 => (value ? 1 : 0);

/** LIMIT/OFFSET arguments: -1 is SQLite's "no limit". */
export const page = (options: { limit?: number; offset?: number } = {}): [number, number] => [
  options.limit === undefined ? -1 : checkCount(options.limit, 'limit'),
  options.offset === undefined ? 0 : checkCount(options.offset, 'offset'),
];
