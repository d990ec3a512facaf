// How a form input reads as a run-config value and back: numbers and lists are typed as text, a checkbox is a
// boolean, a select holds the index of its choice. Pure functions, shared by the training state and its tests.
import type { ApiResults } from '../../lib/api.ts';

export type MethodCatalog = ApiResults['methods.list'];
export type MethodInfo = MethodCatalog['methods'][number];
export type ConfigField = MethodInfo['fields'][number];
export type ConfigValue = ConfigField['default'];
/** What an input holds: text (numbers, strings, lists), a checkbox's boolean, or a select's choice index as text. */
export type FormValue = string | boolean;

/** What a field's input reads as: a value to send, nothing (left empty: the parser's default applies), or why not. */
export type FieldReading = { readonly value: ConfigValue | undefined; readonly error?: undefined } | { readonly value?: undefined; readonly error: string };

const REGEX_CHARS = /[\\^$*+?()[\]{}|]/;

export const formValueOf = (field: ConfigField, value: ConfigValue): FormValue => {
  if (field.kind === 'boolean') return value === true;
  if (field.kind === 'choice') return String(Math.max(0, (field.choices ?? []).findIndex((c) => c === value)));
  if (value === null) return '';
  if (Array.isArray(value)) return value.join(', ');
  return String(value);
};

export const choiceLabel = (choice: string | number | boolean): string => (typeof choice === 'boolean' ? (choice ? 'true' : 'false') : String(choice));

const readNumber = (text: string, integer: boolean, field: ConfigField): FieldReading => {
  const x = Number(text);
  if (!Number.isFinite(x)) return { error: `${field.label} must be a number` };
  if (integer && !Number.isInteger(x)) return { error: `${field.label} must be a whole number` };
  return { value: x };
};

const readList = (text: string, field: ConfigField): FieldReading => {
  const entries = text.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  if (entries.length === 0) return { value: undefined };
  if (field.items === 'integer') {
    const numbers = entries.map(Number);
    const bad = entries.find((_, i) => !Number.isInteger(numbers[i]));
    return bad === undefined ? { value: numbers } : { error: `${field.label}: '${bad}' is not a whole number` };
  }
  // PEFT reads a plain string target_modules as 'all-linear' or one full-match regex, a list as module names.
  const only = entries[0]!;
  if (field.pattern && entries.length === 1 && (only.toLowerCase() === 'all-linear' || REGEX_CHARS.test(only))) return { value: only };
  return { value: entries };
};

export const readField = (field: ConfigField, form: FormValue | undefined): FieldReading => {
  if (field.kind === 'boolean') return { value: form === true };
  if (field.kind === 'choice') {
    const choice = (field.choices ?? [])[Number(form ?? '0')];
    return choice === undefined ? { error: `${field.label}: pick one of the choices` } : { value: choice };
  }
  const text = typeof form === 'string' ? form.trim() : '';
  if (text === '') return field.required ? { error: `${field.label} is required` } : { value: undefined };
  if (field.kind === 'integer' || field.kind === 'number') return readNumber(text, field.kind === 'integer', field);
  if (field.kind === 'list') return readList(text, field);
  return { value: text };
};

/** A path inside `dir`, with the separator `dir` uses (the renderer has no node:path). */
export const joinPath = (dir: string, ...parts: string[]): string => {
  const sep = dir.includes('\\') && !dir.includes('/') ? '\\' : '/';
  return [dir.replace(/[\\/]+$/, ''), ...parts].join(sep);
};

/** A config error as shown beside its field: without the request and payload it came through ('train.start params.config: '). */
export const fieldMessage = (message: string): string => message.replace(/^[\w.]+ params\.config: /, '');

/** A folder's last name: AdapterFusion names each fused adapter after its folder. */
export const baseName = (path: string): string => path.replace(/[\\/]+$/, '').split(/[\\/]/).at(-1) ?? path;

/**
 * The form field an error names: the dispatcher's field ('params.config.training.lr'), else the field a config
 * parser's message names ('params.config: training.lr must be positive', 'method: r=0 must be …'), else the model,
 * dataset or output path the message quotes. Keys are '<block>.<name>' ('training.lr', 'method.r', 'dataset.path').
 */
export const fieldKeyOf = (error: { readonly field?: string | undefined; readonly message: string }, paths: { model?: string; dataset?: string; output?: string }): string | undefined => {
  if (error.field?.startsWith('params.config.')) {
    const key = error.field.slice('params.config.'.length);
    return key.split('.').slice(0, 2).join('.');
  }
  const m = error.message;
  const named = /params\.config: ((?:training|dataset|method)\.\w+|model|output)\b/.exec(m) ?? /\b(method\.\w+|training\.\w+)/.exec(m);
  if (named) return named[1];
  const methodField = /\bmethod: (\w+)(?:=|\s)/.exec(m);
  if (methodField) return `method.${methodField[1]}`;
  if (paths.output && m.includes(paths.output)) return 'output';
  if (paths.dataset && m.includes(paths.dataset)) return 'dataset.path';
  if (paths.model && m.includes(paths.model)) return 'model';
  return undefined;
};
