// How a stored row shows as table cells, and how an edited cell becomes the row again. A top-level field is one
// cell: text edits as text, other values (numbers, objects) as JSON; a chat list ({role, content} or ShareGPT
// {from, value} messages) is one cell per message, each edited as plain text.

export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [key: string]: JsonValue };
export type CellPath = readonly (string | number)[];

export interface Cell {
  /** Where the value sits in the row; [] for a row that is not an object. */
  readonly path: CellPath;
  /** What the editor starts with. */
  readonly text: string;
  /** The text is JSON (parsed back on commit) rather than a string value. */
  readonly json: boolean;
  /** A chat message's role, shown before its text. */
  readonly role?: string;
  /** The row has no such field (editing adds it). */
  readonly missing?: boolean;
}

/** The column a row that is not an object shows in. */
export const WHOLE_ROW = '(row)';

const isObject = (v: unknown): v is { readonly [key: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A list of chat messages: every item an object with a text content/value and a role/from. */
const messageKeys = (value: JsonValue): { role: string; content: string } | undefined => {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const items = value as readonly JsonValue[];
  const keys = isObject(items[0]) && 'from' in items[0] ? { role: 'from', content: 'value' } : { role: 'role', content: 'content' };
  const ok = items.every((m) => isObject(m) && typeof m[keys.role] === 'string' && (typeof m[keys.content] === 'string' || m[keys.content] === undefined));
  return ok ? keys : undefined;
};

const jsonCell = (path: CellPath, value: JsonValue): Cell => ({ path, text: JSON.stringify(value, null, 2), json: true });

/** The cells of one column of a row. */
export const cellsOf = (row: JsonValue, column: string): Cell[] => {
  if (!isObject(row)) return column === WHOLE_ROW ? [jsonCell([], row)] : [];
  if (!(column in row)) return [{ path: [column], text: '', json: false, missing: true }];
  const value = row[column]!;
  if (typeof value === 'string') return [{ path: [column], text: value, json: false }];
  const chat = messageKeys(value);
  if (chat) {
    return (value as readonly { readonly [key: string]: JsonValue }[]).map((m, i) => ({
      path: [column, i, chat.content],
      text: (m[chat.content] as string | undefined) ?? '',
      json: false,
      role: m[chat.role] as string,
    }));
  }
  return [jsonCell([column], value)];
};

/** The table's columns: the version's fields, plus one for rows that are not objects. */
export const columnsFor = (columns: readonly string[], rows: readonly { readonly row: JsonValue }[]): string[] =>
  rows.some((r) => !isObject(r.row)) ? [...columns, WHOLE_ROW] : [...columns];

/** The row with the value at `path` replaced (the row itself for []). */
export const withValue = (row: JsonValue, path: CellPath, value: JsonValue): JsonValue => {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(row) && typeof head === 'number') {
    const copy = [...(row as readonly JsonValue[])];
    copy[head] = withValue(copy[head] ?? null, rest, value);
    return copy;
  }
  const base = isObject(row) ? row : {};
  return { ...base, [String(head)]: withValue(base[String(head)] ?? null, rest, value) };
};

/** The value an edited cell's text stands for; throws a message fit to show when JSON text does not parse. */
export const parseCell = (cell: Cell, text: string): JsonValue => {
  if (!cell.json) return text;
  try {
    return JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new Error(`not valid JSON: ${(err as Error).message}`, { cause: err });
  }
};

/** A key for a cell within its row (for the editor's bookkeeping). */
export const cellId = (key: number, path: CellPath): string => `${key}:${path.join('.')}`;

/** The fields a flat format needs (its other fields are optional). */
const REQUIRED_FIELDS: Readonly<Record<string, readonly string[]>> = {
  alpaca: ['instruction', 'output'],
  'prompt-completion': ['prompt', 'completion'],
  text: ['text'],
};

/**
 * A new, empty row in the dataset's format: its fields to fill in (problems point at what is still empty). Flat
 * formats get the dataset's own columns when those hold the format's fields (a CSV's, say), else the format's.
 */
export const emptyRow = (format: string | undefined, columns: readonly string[]): JsonValue => {
  const required = format ? REQUIRED_FIELDS[format] : undefined;
  if ((required && required.every((f) => columns.includes(f))) || (!required && format !== 'openai' && format !== 'sharegpt')) {
    return Object.fromEntries(columns.map((c) => [c, '']));
  }
  switch (format) {
    case 'openai':
      return { messages: [{ role: 'user', content: '' }, { role: 'assistant', content: '' }] };
    case 'sharegpt':
      return { conversations: [{ from: 'human', value: '' }, { from: 'gpt', value: '' }] };
    case 'alpaca':
      return { instruction: '', input: '', output: '' };
    case 'prompt-completion':
      return { prompt: '', completion: '' };
    default:
      return { text: '' };
  }
};
