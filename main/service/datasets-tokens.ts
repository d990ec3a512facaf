// What a model's tokenizer says about a stored dataset version: one row through the chat template with the tokens
// training puts loss on (preview), the token lengths of every example (histogram), and the train/eval split a run
// would make (split). All of it through the training code itself: normalizeValue, tokenizeConversation /
// tokenizeDataset (the same masks), splitTrainEval (the same seeded split).
import { existsSync, statSync } from 'node:fs';
import { ModelLoadError } from '../models/errors.ts';
import { openGguf } from '../models/gguf/reader.ts';
import { loadTokenizerFromFolder, tokenizerFromGgufMetadata, type Tokenizer } from '../models/tokenizer/index.ts';
import type { Store } from '../store/index.ts';
import {
  AssistantSpanError,
  DatasetError,
  IGNORE_INDEX,
  isError,
  splitTrainEval,
  tokenizeConversation,
  tokenizeDataset,
  tokenizeText,
  trainedTokenCount,
  computeTokenStats,
  type DatasetRecord,
  type TokenizedExample,
  type TrainOn,
} from '../train/dataset/index.ts';
import { normalizeValue } from '../train/dataset/normalize.ts';
import { byteLevelTokenEnds } from '../train/dataset/token-spans.ts';
import type { DatasetHistogram, DatasetPreview, DatasetProgress, DatasetSplit, HistogramBin, PreviewToken } from './dataset-contract.ts';
import { versionIndex, type VersionIndex } from './datasets-index.ts';
import { parseRunConfig } from './run-config.ts';

/** Training's own defaults for what a split depends on (seed, max length), read from the run-config parser. */
const TRAINING_DEFAULTS = parseRunConfig({ model: 'm', dataset: { path: 'd.jsonl' }, method: { peft_type: 'LORA' }, output: 'o' }, 'defaults').training;

/** Tokenizers of the models previewed lately, by path (reloaded when the files change). */
const tokenizers = new Map<string, { stamp: number; tokenizer: Tokenizer }>();
const KEPT_TOKENIZERS = 3;

/** A model's tokenizer without its weights: an HF folder's tokenizer files, or a GGUF header. */
export const openTokenizer = (path: string): Tokenizer => {
  if (!existsSync(path)) throw new ModelLoadError(`${path} does not exist`, path);
  const stat = statSync(path);
  const cached = tokenizers.get(path);
  if (cached && cached.stamp === stat.mtimeMs) return cached.tokenizer;
  let tokenizer: Tokenizer;
  if (stat.isDirectory()) tokenizer = loadTokenizerFromFolder(path);
  else if (path.toLowerCase().endsWith('.gguf')) tokenizer = tokenizerFromGgufMetadata(openGguf(path).metadata, { source: path });
  else throw new ModelLoadError(`${path} is neither a Hugging Face model folder nor a .gguf file`, path);
  tokenizers.delete(path);
  tokenizers.set(path, { stamp: stat.mtimeMs, tokenizer });
  while (tokenizers.size > KEPT_TOKENIZERS) tokenizers.delete(tokenizers.keys().next().value!);
  return tokenizer;
};

/**
 * Each token's characters in `text`. Byte-level vocabularies: every character goes to the token holding its first
 * byte. Others: the stream decoder's deltas (never a split character).
 */
const tokenPieces = (tokenizer: Tokenizer, text: string, ids: readonly number[]): string[] => {
  const ends = byteLevelTokenEnds(tokenizer, text, ids);
  if (!ends) {
    const decoder = tokenizer.createStreamDecoder();
    const pieces = ids.map((id) => decoder.push(id));
    if (pieces.length) pieces[pieces.length - 1] += decoder.flush();
    return pieces;
  }
  const pieces = ids.map(() => '');
  let token = 0;
  let byte = 0;
  for (const char of text) {
    while (token < ends.length - 1 && byte >= ends[token]!) token++;
    pieces[token] += char;
    byte += Buffer.byteLength(char, 'utf8');
  }
  return pieces;
};

const recordOfRow = (index: VersionIndex, position: number): DatasetRecord => {
  const line = position + 1;
  if (!index.format) throw new DatasetError(`row ${line} cannot be previewed: ${index.summary.evidence}`);
  const normalized = normalizeValue(index.rows[position], index.format, line);
  if (!normalized.record) throw new DatasetError(`row ${line} cannot be previewed until it is fixed: ${normalized.errors.join('; ')}`);
  return normalized.record;
};

export const previewRow = async (store: Store, o: { id: number; versionId?: number; key: number; model: string; trainOn?: TrainOn }): Promise<DatasetPreview> => {
  const index = versionIndex(store, o.id, o.versionId);
  const position = index.positionOf.get(o.key);
  if (position === undefined) throw new DatasetError(`row ${o.key} is not in version ${index.versionNumber} of dataset ${o.id}`);
  const record = recordOfRow(index, position);
  const tokenizer = openTokenizer(o.model);
  let text: string;
  let encoded: { inputIds: number[]; labels: number[] };
  if (record.kind === 'text') {
    encoded = tokenizeText(tokenizer, record);
    text = tokenizer.decode(encoded.inputIds);
  } else {
    try {
      encoded = tokenizeConversation(tokenizer, record, { trainOn: o.trainOn ?? 'assistant' });
    } catch (err) {
      if (err instanceof AssistantSpanError) throw new DatasetError(`row ${position + 1}: ${err.message}`);
      throw err;
    }
    text = tokenizer.decode(encoded.inputIds);
  }
  const pieces = tokenPieces(tokenizer, text, encoded.inputIds);
  const tokens: PreviewToken[] = encoded.inputIds.map((id, k) => ({ id, text: pieces[k] ?? '', trained: encoded.labels[k] !== IGNORE_INDEX }));
  return { versionId: index.versionId, key: o.key, index: position + 1, text, tokens, trainedTokens: trainedTokenCount(encoded.labels) };
};

export interface LongWork {
  readonly emit?: (progress: DatasetProgress) => void;
  readonly signal?: AbortSignal;
}

export class DatasetWorkCancelled extends Error {
  override readonly name = 'DatasetWorkCancelled';
}

/** Records tokenized per step: between steps progress is reported and a cancel can arrive. */
const CHUNK = 256;

/**
 * The version's usable records tokenized as training does (tokenizeDataset is per record, so chunks give the same
 * examples in the same order), reporting progress between chunks.
 */
const tokenizeVersion = async (
  index: VersionIndex,
  tokenizer: Tokenizer,
  options: { trainOn: TrainOn; maxLength?: number },
  work: LongWork,
): Promise<{ examples: TokenizedExample[]; errors: number; dropped: number; truncated: number }> => {
  const records = index.loaded.records;
  const examples: TokenizedExample[] = [];
  let errors = 0;
  let dropped = 0;
  let truncated = 0;
  for (let from = 0; from < records.length; from += CHUNK) {
    if (work.signal?.aborted) throw new DatasetWorkCancelled('cancelled');
    const part = tokenizeDataset(records.slice(from, from + CHUNK), tokenizer, {
      trainOn: options.trainOn,
      ...(options.maxLength !== undefined ? { maxLength: options.maxLength } : {}),
      file: index.loaded.file,
    });
    examples.push(...part.examples);
    errors += part.problems.filter(isError).length;
    dropped += part.stats.dropped;
    truncated += part.stats.truncated;
    const done = Math.min(records.length, from + CHUNK);
    work.emit?.({ phase: 'tokenizing', done, total: records.length });
    if (done < records.length) await new Promise((resolve) => setImmediate(resolve));
  }
  return { examples, errors, dropped, truncated };
};

/** A bin width of 1, 2 or 5 × 10^k giving at most `bins` bins over [min, max]. */
const binWidth = (min: number, max: number, bins: number): number => {
  const raw = Math.max(1, (max - min + 1) / bins);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= raw) return Math.max(1, Math.round(step * magnitude));
  return Math.ceil(raw);
};

export const histogramBins = (lengths: readonly number[], bins = 20): HistogramBin[] => {
  if (lengths.length === 0) return [];
  const min = Math.min(...lengths);
  const max = Math.max(...lengths);
  const width = binWidth(min, max, bins);
  const start = Math.floor(min / width) * width;
  const out: { -readonly [K in keyof HistogramBin]: HistogramBin[K] }[] = [];
  for (let from = start; from <= max; from += width) out.push({ from, to: from + width - 1, count: 0 });
  for (const n of lengths) out[Math.floor((n - start) / width)]!.count++;
  return out;
};

export const tokenHistogram = async (
  store: Store,
  o: { id: number; versionId?: number; model: string; trainOn?: TrainOn; maxLength?: number; bins?: number },
  work: LongWork = {},
): Promise<DatasetHistogram> => {
  const index = versionIndex(store, o.id, o.versionId);
  const tokenizer = openTokenizer(o.model);
  // Untruncated lengths: the histogram is what tells the user which max length fits the data.
  const { examples, dropped } = await tokenizeVersion(index, tokenizer, { trainOn: o.trainOn ?? 'assistant' }, work);
  const lengths = examples.map((e) => e.inputIds.length);
  return {
    versionId: index.versionId,
    bins: histogramBins(lengths, o.bins),
    stats: computeTokenStats(examples, { dropped, truncated: 0 }),
    ...(o.maxLength !== undefined ? { overMaxLength: lengths.filter((n) => n > o.maxLength!).length } : {}),
    skipped: index.rows.length - index.loaded.records.length + dropped,
  };
};

export const splitCounts = async (
  store: Store,
  o: { id: number; versionId?: number; evalFraction: number; seed?: number; model?: string; trainOn?: TrainOn; maxLength?: number },
  work: LongWork = {},
): Promise<DatasetSplit> => {
  const index = versionIndex(store, o.id, o.versionId);
  const seed = o.seed ?? TRAINING_DEFAULTS.seed;
  let lines: { line: number }[] = index.loaded.records;
  let errors = index.summary.errors;
  if (o.model !== undefined) {
    const tokenized = await tokenizeVersion(index, openTokenizer(o.model), { trainOn: o.trainOn ?? 'assistant', maxLength: o.maxLength ?? TRAINING_DEFAULTS.maxLength }, work);
    lines = tokenized.examples;
    errors += tokenized.errors;
  }
  const split = splitTrainEval(lines, { evalFraction: o.evalFraction, seed });
  const evalKeys = [...new Set(split.eval.map((e) => index.keys[e.line - 1]).filter((k): k is number => k !== undefined))];
  return { versionId: index.versionId, basis: o.model !== undefined ? 'examples' : 'records', train: split.train.length, eval: split.eval.length, evalKeys, errors };
};
