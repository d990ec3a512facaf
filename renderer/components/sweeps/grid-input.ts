// What the sweep form's text fields mean: lists of values typed as "4, 8, 16" (commas or spaces), each checked the
// way the service will check it, so a bad value is named beside its field before anything starts.

export type Parsed<T> = { readonly value: T; readonly error?: undefined } | { readonly value?: undefined; readonly error: string };

export interface NumberRule {
  /** Whole numbers only (r, steps). */
  readonly integer?: boolean;
  /** Values must be above this (exclusive). */
  readonly above?: number;
  /** Values must be at least this (inclusive). */
  readonly atLeast?: number;
  /** Values must be below this (exclusive). */
  readonly below?: number;
  /** Shown with "give at least one value". */
  readonly example: string;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** One number as typed ("2e-4", "16"), checked against the rule; `what` names it in the message. */
export const parseNumber = (text: string, rule: NumberRule, what = 'the value'): Parsed<number> => {
  const t = text.trim();
  if (t === '') return { error: `give ${what}, e.g. ${rule.example}` };
  if (!NUMBER.test(t)) return { error: `'${t}' is not a number` };
  const n = Number(t);
  if (rule.integer && !Number.isInteger(n)) return { error: `'${t}' is not a whole number` };
  if (rule.above !== undefined && !(n > rule.above)) return { error: `'${t}' must be above ${rule.above}` };
  if (rule.atLeast !== undefined && !(n >= rule.atLeast)) return { error: `'${t}' must be at least ${rule.atLeast}` };
  if (rule.below !== undefined && !(n < rule.below)) return { error: `'${t}' must be below ${rule.below}` };
  return { value: n };
};

/** "4, 8, 16" → [4, 8, 16]: at least one value, each valid, none twice. */
export const parseNumberList = (text: string, rule: NumberRule): Parsed<number[]> => {
  const tokens = text.split(/[\s,]+/).filter((t) => t.length > 0);
  if (tokens.length === 0) return { error: `give at least one value, e.g. ${rule.example}` };
  const values: number[] = [];
  for (const token of tokens) {
    const one = parseNumber(token, rule);
    if (one.error !== undefined) return one;
    if (values.includes(one.value)) return { error: `${token} is listed twice` };
    values.push(one.value);
  }
  return { value: values };
};

/** A target_modules value: 'all-linear' or a list of module names. */
export type TargetModules = string | string[];

const MODULE_NAME = /^[A-Za-z_][\w.]*$/;

/**
 * "q_proj, v_proj; all-linear" → [['q_proj', 'v_proj'], 'all-linear']: alternatives separated by semicolons, each
 * 'all-linear' or a comma list of module names.
 */
export const parseTargetAlternatives = (text: string): Parsed<TargetModules[]> => {
  const alternatives = text.split(';').map((a) => a.trim()).filter((a) => a.length > 0);
  if (alternatives.length === 0) return { error: 'name the modules to adapt, e.g. all-linear or q_proj, v_proj' };
  const out: TargetModules[] = [];
  for (const alt of alternatives) {
    if (alt.toLowerCase() === 'all-linear') {
      out.push('all-linear');
      continue;
    }
    const names = alt.split(/[\s,]+/).filter((n) => n.length > 0);
    const bad = names.find((n) => !MODULE_NAME.test(n));
    if (bad !== undefined) return { error: `'${bad}' is not a module name (letters, digits, _ and .)` };
    out.push(names);
  }
  const keys = out.map((t) => JSON.stringify(t));
  if (new Set(keys).size !== keys.length) return { error: 'an alternative is listed twice' };
  return { value: out };
};

/** Halving rungs: ascending step numbers, each before the last step. */
export const parseRungs = (text: string, steps: number | undefined): Parsed<number[]> => {
  const list = parseNumberList(text, { integer: true, above: 0, example: '1, 2' });
  if (list.error !== undefined) return list;
  const sorted = [...list.value].sort((a, b) => a - b);
  if (sorted.some((v, i) => v !== list.value[i])) return { error: 'list the rungs in ascending order' };
  if (steps !== undefined && sorted.at(-1)! >= steps) return { error: `a rung must come before the last step (${steps})` };
  return { value: sorted };
};
