/**
 * Batches ready to feed: int64 (B, T) arrays input_ids, labels (-100 where no loss), position_ids and
 * segment_ids (-1 on padding), from examples or packed rows. The order is a pure function of (rows, seed,
 * epoch), so a resumed run sees the same batches: a seeded shuffle, optionally grouped by length (HF's
 * LengthGroupedSampler: windows of groupWindow × batchSize rows sorted by length, so a batch pads little).
 */
import { createRng } from '../../engine/random.ts';
import { DatasetError } from './problems.ts';
import { IGNORE_INDEX } from './records.ts';

export interface BatchRow {
  readonly inputIds: readonly number[];
  readonly labels: readonly number[];
  /** Packed rows carry their own; plain examples count from 0. */
  readonly positionIds?: readonly number[];
  /** Packed rows carry their own; a plain example is segment 0. */
  readonly segmentIds?: readonly number[];
}

export interface BatchOptions {
  readonly batchSize: number;
  /** Token id written on padding (the tokenizer's pad, else EOS). Padding never carries loss. */
  readonly padId: number;
  readonly seed?: number;
  /** Mixed into the seed: each epoch has its own order. */
  readonly epoch?: number;
  /** Default true. */
  readonly shuffle?: boolean;
  readonly groupByLength?: boolean;
  /** Rows per length-sorted window, in batches (default 50, as transformers). */
  readonly groupWindow?: number;
  /** Put the batch with the longest row first, so an out-of-memory shows at step 1. Default false. */
  readonly longestFirst?: boolean;
  /** Pad T up to a multiple of this. */
  readonly padToMultipleOf?: number;
  /** Pad every batch to exactly this T (rows longer than it are an error). */
  readonly fixedLength?: number;
  /** Leave out a last, smaller batch. Default false. */
  readonly dropLast?: boolean;
}

export interface Batch {
  readonly inputIds: BigInt64Array;
  readonly labels: BigInt64Array;
  readonly positionIds: BigInt64Array;
  readonly segmentIds: BigInt64Array;
  /** B. */
  readonly batchSize: number;
  /** T. */
  readonly seqLen: number;
  /** Indices of the rows in this batch. */
  readonly rows: readonly number[];
  /** Non-padding tokens. */
  readonly tokens: number;
  /** Positions whose next token carries loss within the same segment (what a shifted loss trains on). */
  readonly trainedTokens: number;
}

const mixSeed = (seed: number, epoch: number): number => (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;

const shuffled = <T>(items: T[], rng: () => number): T[] => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
};

/** The batches of one epoch as lists of row indices: the plan `batches` follows. */
export const batchPlan = (lengths: readonly number[], options: Omit<BatchOptions, 'padId'>): number[][] => {
  const { batchSize } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const rng = createRng(mixSeed(options.seed ?? 0, options.epoch ?? 0));
  let order = lengths.map((_, i) => i);
  if (options.shuffle ?? true) order = shuffled(order, rng);
  if (options.groupByLength) {
    const window = batchSize * (options.groupWindow ?? 50);
    const grouped: number[] = [];
    for (let i = 0; i < order.length; i += window) {
      grouped.push(...order.slice(i, i + window).sort((a, b) => lengths[b]! - lengths[a]! || a - b));
    }
    order = grouped;
  }
  let plan: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) plan.push(order.slice(i, i + batchSize));
  if (options.dropLast && plan.length && plan.at(-1)!.length < batchSize) plan.pop();
  if (options.groupByLength && (options.shuffle ?? true)) plan = shuffled(plan, rng);
  if (options.longestFirst && plan.length > 1) {
    const longest = (b: number[]): number => Math.max(...b.map((i) => lengths[i]!));
    let best = 0;
    plan.forEach((b, k) => {
      if (longest(b) > longest(plan[best]!)) best = k;
    });
    [plan[0], plan[best]] = [plan[best]!, plan[0]!];
  }
  return plan;
};

/** Rows → one padded (B, T) batch. */
export const collate = (rows: readonly BatchRow[], indices: readonly number[], options: Pick<BatchOptions, 'padId' | 'padToMultipleOf' | 'fixedLength'>): Batch => {
  const B = indices.length;
  const longest = Math.max(1, ...indices.map((i) => rows[i]!.inputIds.length));
  let T = options.fixedLength ?? longest;
  if (longest > T) throw new DatasetError(`a row of ${longest} tokens does not fit the fixed length ${T}`);
  const multiple = options.padToMultipleOf ?? 1;
  T = Math.ceil(T / multiple) * multiple;
  const inputIds = new BigInt64Array(B * T).fill(BigInt(options.padId));
  const labels = new BigInt64Array(B * T).fill(BigInt(IGNORE_INDEX));
  const positionIds = new BigInt64Array(B * T);
  const segmentIds = new BigInt64Array(B * T).fill(-1n);
  let tokens = 0;
  let trainedTokens = 0;
  indices.forEach((index, b) => {
    const row = rows[index]!;
    const n = row.inputIds.length;
    if (row.labels.length !== n) throw new DatasetError(`row ${index} has ${n} ids but ${row.labels.length} labels`);
    const base = b * T;
    for (let t = 0; t < n; t++) {
      inputIds[base + t] = BigInt(row.inputIds[t]!);
      labels[base + t] = BigInt(row.labels[t]!);
      positionIds[base + t] = BigInt(row.positionIds?.[t] ?? t);
      segmentIds[base + t] = BigInt(row.segmentIds?.[t] ?? 0);
      if (t > 0 && row.labels[t] !== IGNORE_INDEX && (row.segmentIds?.[t] ?? 0) === (row.segmentIds?.[t - 1] ?? 0)) trainedTokens++;
    }
    tokens += n;
  });
  return { inputIds, labels, positionIds, segmentIds, batchSize: B, seqLen: T, rows: indices, tokens, trainedTokens };
};

/** The batches of one epoch, in plan order. */
export function* batches(rows: readonly BatchRow[], options: BatchOptions): Generator<Batch> {
  for (const indices of batchPlan(rows.map((r) => r.inputIds.length), options)) yield collate(rows, indices, options);
}

/** The pad id to use with a tokenizer: its pad token, else EOS, else 0. */
export const padIdOf = (tokenizer: { readonly pad?: { readonly id: number } | undefined; readonly eos?: { readonly id: number } | undefined }): number =>
  tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
