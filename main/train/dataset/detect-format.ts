/**
 * Which format a file is in: each record's fields vote (messages → OpenAI, conversations → ShareGPT,
 * instruction/output → Alpaca, prompt/completion, text); the most common wins and the evidence says how many
 * records agreed. Records that look like another format are reported, each at its line ("mixed formats").
 */
import { DATASET_FORMATS, FORMAT_SIGNATURES, type DatasetFormat } from './records.ts';

export interface FormatDetection {
  /** undefined when no record looks like any format. */
  readonly format: DatasetFormat | undefined;
  /** Why: "openai (…): 41 of 42 records; 1 looks like alpaca (…)" or "chosen". */
  readonly evidence: string;
  /** Records per format they look like ('unknown': none). */
  readonly counts: Readonly<Partial<Record<DatasetFormat | 'unknown', number>>>;
  readonly chosen: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The format a single record's fields point to, or undefined when none. */
export const formatOfValue = (value: unknown): DatasetFormat | undefined => {
  if (!isObject(value)) return undefined;
  if ('messages' in value) return 'openai';
  if ('conversations' in value) return 'sharegpt';
  if ('instruction' in value) return 'alpaca';
  if ('prompt' in value || 'completion' in value) return 'prompt-completion';
  if ('text' in value) return 'text';
  if ('output' in value || 'response' in value) return 'alpaca';
  return undefined;
};

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Votes over all records, or takes the chosen format (then the counts still show what the records look like). */
export const detectFormat = (values: readonly unknown[], chosen?: DatasetFormat): FormatDetection => {
  const counts: Partial<Record<DatasetFormat | 'unknown', number>> = {};
  for (const v of values) {
    const f = formatOfValue(v) ?? 'unknown';
    counts[f] = (counts[f] ?? 0) + 1;
  }
  const others = (winner: DatasetFormat | undefined): string =>
    [...DATASET_FORMATS, 'unknown' as const]
      .filter((f) => f !== winner && (counts[f] ?? 0) > 0)
      .map((f) => `${counts[f]} ${f === 'unknown' ? 'match no format' : `look${counts[f] === 1 ? 's' : ''} like ${f}`}`)
      .join(', ');
  if (chosen) {
    const rest = others(chosen);
    return { format: chosen, evidence: `${chosen} (chosen)${rest ? `; of the records, ${rest}` : ''}`, counts, chosen: true };
  }
  let best: DatasetFormat | undefined;
  for (const f of DATASET_FORMATS) if ((counts[f] ?? 0) > (best ? counts[best] ?? 0 : 0)) best = f;
  if (!best) {
    return { format: undefined, evidence: `none of ${plural(values.length, 'record')} has the fields of a known format`, counts, chosen: false };
  }
  const rest = others(best);
  return {
    format: best,
    evidence: `${best} (${FORMAT_SIGNATURES[best]}): ${counts[best]} of ${plural(values.length, 'record')}${rest ? `; ${rest}` : ''}`,
    counts,
    chosen: false,
  };
};
