// Choosing checkpoint tensors by HF name, for the methods that train the model's own tensors. An entry is a glob
// when it has `*` or `?` and no other regex syntax (`model.layers.*.mlp.*`, `*norm*`: full match, `*` any run of
// characters, `?` one, the rest literal); otherwise a regular expression searched in the name (`norm`, `lm_head`,
// `layers\.(10|11)\.`). A tied LM head's tensor also answers to `lm_head.weight`.
import type { CheckpointTensor } from './base-tensors.ts';
import { PeftError } from './errors.ts';

const REGEX_ONLY = /[()[\]{}|+^$\\]/;

export const isGlob = (entry: string): boolean => /[*?]/.test(entry) && !REGEX_ONLY.test(entry);

// A glob holds no regex syntax but `.`, `*` and `?` (isGlob), so only `.` needs escaping.
const globRegex = (glob: string): RegExp =>
  new RegExp(`^${[...glob].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c === '.' ? '\\.' : c)).join('')}$`);

/** An entry as a test on names; an invalid regular expression is an error naming the field and the entry. */
export const compilePattern = (entry: string, field: string, where: string): RegExp => {
  if (isGlob(entry)) return globRegex(entry);
  try {
    return new RegExp(entry);
  } catch (err) {
    throw new PeftError(`${where}: ${field} entry ${JSON.stringify(entry)} is not a valid regular expression (${(err as Error).message})`);
  }
};

/** Checks a list-of-patterns field: a non-empty list of valid patterns, or (when allowed) null / absent. */
export const checkPatternList = (value: unknown, field: string, where: string, o: { readonly required: boolean }): void => {
  if (value === undefined || value === null) {
    if (o.required) throw new PeftError(`${where}: ${field} must list the tensors to train (regexes or globs over HF tensor names)`);
    return;
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((e) => typeof e === 'string' && e.length > 0)) {
    throw new PeftError(`${where}: ${field}=${JSON.stringify(value)} must be a non-empty list of regexes or globs over HF tensor names`);
  }
  for (const entry of value as string[]) compilePattern(entry, field, where);
};

const names = (t: CheckpointTensor): readonly string[] => [t.name, ...t.aliases];

export interface Selection {
  /** Entries that choose tensors; null = every candidate. Each must match at least one candidate. */
  readonly include: readonly string[] | null;
  /** Entries that leave tensors out again. */
  readonly exclude: readonly string[] | null;
  /** Config fields the entries come from, and the method, for messages. */
  readonly includeField: string;
  readonly excludeField: string;
  readonly method: string;
}

/** The candidates the include entries choose, less those the exclude entries name; never empty. */
export const selectTensors = <T extends CheckpointTensor>(candidates: readonly T[], s: Selection): T[] => {
  const example = candidates[0]?.name ?? 'model.layers.0.self_attn.q_proj.weight';
  const matching = (entry: string, field: string): Set<T> => {
    const re = compilePattern(entry, field, s.method);
    return new Set(candidates.filter((t) => names(t).some((n) => re.test(n))));
  };
  let chosen: Set<T>;
  if (s.include === null) chosen = new Set(candidates);
  else {
    chosen = new Set();
    for (const entry of s.include) {
      const hit = matching(entry, s.includeField);
      if (hit.size === 0) throw new PeftError(`${s.method}: ${s.includeField} entry ${JSON.stringify(entry)} matches no tensor of the model (names look like '${example}')`);
      for (const t of hit) chosen.add(t);
    }
  }
  for (const entry of s.exclude ?? []) for (const t of matching(entry, s.excludeField)) chosen.delete(t);
  if (chosen.size === 0) throw new PeftError(`${s.method}: ${s.excludeField} leaves no tensor to train`);
  return candidates.filter((t) => chosen.has(t));
};
