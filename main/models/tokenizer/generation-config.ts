/**
 * generation_config.json: the model author's generation defaults (stop tokens, sampling settings), read into a
 * typed object. Only the fields the app uses; unknown keys are ignored, as transformers keeps them as extras.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from './load-folder.ts';
import type { Tokenizer } from './tokenizer.ts';

export class GenerationConfigError extends Error {
  override readonly name: string = 'GenerationConfigError';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

export interface GenerationConfig {
  /** Tokens that end generation; generation_config.json may give one id or a list (Llama 3: [128001, 128008, 128009]). */
  readonly eosTokenIds: readonly number[];
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  readonly doSample?: boolean;
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly minP?: number;
  readonly repetitionPenalty?: number;
  readonly maxNewTokens?: number;
  readonly maxLength?: number;
}

/** Validates a parsed generation_config.json; `file` names it in errors. */
export const parseGenerationConfig = (raw: unknown, file = 'generation_config.json'): GenerationConfig => {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new GenerationConfigError(`${file} must hold a JSON object`, file);
  }
  const obj = raw as Record<string, unknown>;
  const bad = (key: string, want: string): never => {
    throw new GenerationConfigError(`${file}: ${key} must be ${want}, got ${JSON.stringify(obj[key])}`, file);
  };
  const tokenId = (key: string): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    return Number.isInteger(v) && (v as number) >= 0 ? (v as number) : bad(key, 'a token id (an integer ≥ 0)');
  };
  const number = (key: string, ok: (n: number) => boolean, want: string): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : bad(key, want);
  };
  const integer = (key: string, min: number): number | undefined =>
    number(key, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);

  const eosRaw = obj.eos_token_id;
  let eosTokenIds: number[] = [];
  if (Array.isArray(eosRaw)) {
    if (!eosRaw.every((v) => Number.isInteger(v) && v >= 0)) bad('eos_token_id', 'a token id or a list of token ids');
    eosTokenIds = [...new Set(eosRaw as number[])];
  } else if (eosRaw !== undefined && eosRaw !== null) {
    eosTokenIds = [tokenId('eos_token_id') as number];
  }
  const doSample = obj.do_sample;
  if (doSample !== undefined && doSample !== null && typeof doSample !== 'boolean') bad('do_sample', 'true or false');

  const fields: Record<string, number | boolean | undefined> = {
    bosTokenId: tokenId('bos_token_id'),
    padTokenId: tokenId('pad_token_id'),
    doSample: typeof doSample === 'boolean' ? doSample : undefined,
    temperature: number('temperature', (n) => n >= 0, 'a number ≥ 0'),
    topP: number('top_p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    topK: integer('top_k', 0),
    minP: number('min_p', (n) => n >= 0 && n <= 1, 'a number in [0, 1]'),
    repetitionPenalty: number('repetition_penalty', (n) => n > 0, 'a number > 0'),
    maxNewTokens: integer('max_new_tokens', 1),
    maxLength: integer('max_length', 1),
  };
  // Leave unset fields out rather than present-but-undefined, so spreads over defaults behave.
  const defined = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  return { eosTokenIds, ...defined } as GenerationConfig;
};

/** Reads DIR/generation_config.json; undefined when the folder has none (many base models ship without it). */
export const readGenerationConfig = (dir: string): GenerationConfig | undefined => {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = readJsonFile(file);
  } catch (err) {
    throw new GenerationConfigError((err as Error).message, file);
  }
  return parseGenerationConfig(raw, file);
};

/**
 * The ids that end a generation: generation_config's eos ids (transformers stops on any of them), or the
 * tokenizer's eos token when there is no generation config or it names none.
 */
export const stopTokenIds = (config: GenerationConfig | undefined, tokenizer: Tokenizer): number[] => {
  if (config && config.eosTokenIds.length > 0) return [...config.eosTokenIds];
  return tokenizer.eos ? [tokenizer.eos.id] : [];
};
