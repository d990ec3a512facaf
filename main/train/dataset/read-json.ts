/**
 * .json datasets: an array of records, or an object wrapping one ({"data": [...]}, also "train", "rows",
 * "examples", "records"). The file is scanned for the boundaries of each record first (strings and nesting
 * respected), then each record is parsed on its own, so that every problem names the line where its record
 * starts, a broken record does not hide the others, and a truncated array names the record that never closes.
 * A file of one JSON object per line saved as .json (what `datasets.to_json` writes) is read as JSON Lines.
 */
import { columnAt, parseJson } from './json-errors.ts';
import type { ProblemLog } from './problems.ts';
import { lineAt } from './utf8.ts';

export interface SourceRow {
  /** 1-based line (or Parquet row) where the record starts. */
  readonly line: number;
  readonly value: unknown;
}

/** Keys of an object that wraps the records. */
export const WRAPPER_KEYS = ['data', 'train', 'rows', 'examples', 'records'] as const;

const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

const skipSpace = (text: string, i: number): number => {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
};

/** Index just past the string starting at `i` (a '"'), or -1 when it never closes. */
const skipString = (text: string, i: number): number => {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return -1;
};

/**
 * End of the value starting at `i`: at depth 0, the first ',' or closing bracket outside strings, or the end of
 * the text. `unclosed` is set when the text ends inside the value (an open bracket or string).
 */
const scanValue = (text: string, i: number): { end: number; unclosed: boolean } => {
  let depth = 0;
  let j = i;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 0x22) {
      const next = skipString(text, j);
      if (next < 0) return { end: text.length, unclosed: true };
      j = next;
      continue;
    }
    if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) return { end: j, unclosed: false };
      depth--;
    } else if (c === 0x2c && depth === 0) return { end: j, unclosed: false };
    j++;
  }
  return { end: text.length, unclosed: depth > 0 };
};

/** Index just past the bracket that closes the container opening at `i`, or -1 when it never closes. */
const skipContainer = (text: string, i: number): number => {
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) {
      const next = skipString(text, j);
      if (next < 0) return -1;
      j = next - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return j + 1;
  }
  return -1;
};

/** Fields that mark an object as one record of a known format (see formats.ts). */
const RECORD_KEYS = ['messages', 'conversations', 'instruction', 'prompt', 'text'];

/** Parses text[start, end) as one record; problems get the record's start line (or the exact line V8 names). */
const parseRecord = (text: string, start: number, end: number, log: ProblemLog): SourceRow | undefined => {
  const line = lineAt(text, start);
  const parsed = parseJson(text.slice(start, end));
  if (parsed.ok) return { line, value: parsed.value };
  const { message, offset } = parsed.problem;
  if (offset === undefined) {
    log.error(line, message);
  } else {
    const at = start + offset;
    log.error(lineAt(text, at), `${message} (column ${columnAt(text, at)}, in the record starting at line ${line})`);
  }
  return undefined;
};

/** The records of the array whose '[' is at `open`. */
const readArray = (text: string, open: number, log: ProblemLog): { rows: SourceRow[]; end: number } => {
  const rows: SourceRow[] = [];
  let i = skipSpace(text, open + 1);
  if (text[i] === ']') return { rows, end: i + 1 };
  for (;;) {
    if (i >= text.length) {
      log.error(lineAt(text, text.length), `truncated JSON: the list opened at line ${lineAt(text, open)} is never closed with ']'`);
      return { rows, end: text.length };
    }
    const { end, unclosed } = scanValue(text, i);
    if (unclosed) {
      log.error(
        lineAt(text, i),
        `truncated JSON: the record starting at line ${lineAt(text, i)} is never closed (the file ends inside it, ` +
          `or a bracket or quote is missing)`,
      );
      return { rows, end: text.length };
    }
    if (end === i) {
      log.error(lineAt(text, i), `broken JSON: an empty element in the list (two commas in a row, or a comma before ']')`);
    } else {
      const row = parseRecord(text, i, end, log);
      if (row) rows.push(row);
    }
    if (end >= text.length) continue;
    if (text[end] === ']') return { rows, end: end + 1 };
    if (text[end] === '}') {
      log.error(lineAt(text, end), `broken JSON: '}' where the list expects ',' or ']'`);
      return { rows, end: end + 1 };
    }
    i = skipSpace(text, end + 1);
    if (text[i] === ']') {
      log.warning(lineAt(text, end), 'a trailing comma after the last record (not valid JSON; ignored)');
      return { rows, end: i + 1 };
    }
  }
};

/** Key → offset of its value, for the top-level object at `open`; undefined when the object is malformed. */
const objectKeys = (text: string, open: number): Map<string, number> | undefined => {
  const keys = new Map<string, number>();
  let i = skipSpace(text, open + 1);
  while (i < text.length && text[i] !== '}') {
    if (text[i] !== '"') return undefined;
    const keyEnd = skipString(text, i);
    if (keyEnd < 0) return undefined;
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    if (text[i] !== ':') return undefined;
    const valueStart = skipSpace(text, i + 1);
    keys.set(key, valueStart);
    const { end, unclosed } = scanValue(text, valueStart);
    if (unclosed) return undefined;
    i = skipSpace(text, end + (text[end] === ',' ? 1 : 0));
  }
  return keys;
};

/** Every record of a .json file's text (BOM already dropped); problems go to `log`. */
export const readJsonRecords = (text: string, log: ProblemLog, readLines: (text: string) => SourceRow[]): SourceRow[] => {
  const start = skipSpace(text, 0);
  if (start >= text.length) {
    log.error(1, 'the file is empty');
    return [];
  }
  if (text[start] === '[') {
    const { rows, end } = readArray(text, start, log);
    const rest = skipSpace(text, end);
    if (rest < text.length) log.error(lineAt(text, rest), 'broken JSON: more text after the closing \']\' of the list');
    return rows;
  }
  if (text[start] === '{') {
    const keys = objectKeys(text, start);
    const wrapper = keys && WRAPPER_KEYS.find((k) => text[keys.get(k) ?? -1] === '[');
    if (keys && wrapper !== undefined) return readArray(text, keys.get(wrapper)!, log).rows;
    const firstEnd = skipContainer(text, start);
    if (firstEnd > 0 && text[skipSpace(text, firstEnd)] === '{') return readLines(text);
    if (keys && RECORD_KEYS.some((k) => keys.has(k))) return [parseRecord(text, start, text.length, log)].filter((r): r is SourceRow => r !== undefined);
    if (keys) {
      log.error(
        lineAt(text, start),
        `a .json dataset is a list of records or an object with a "data" list; this object has ${
          keys.size ? `the keys ${[...keys.keys()].slice(0, 8).join(', ')}` : 'no keys'
        } (one record per line belongs in a .jsonl file)`,
      );
      return [];
    }
    return [parseRecord(text, start, text.length, log)].filter((r): r is SourceRow => r !== undefined);
  }
  const parsed = parseJson(text);
  if (parsed.ok) {
    log.error(lineAt(text, start), 'a .json dataset is a list of records or an object with a "data" list, not a single value');
  } else {
    const { message, offset } = parsed.problem;
    log.error(lineAt(text, offset ?? start), message);
  }
  return [];
};
