/**
 * Packing: several examples share one row of at most maxLength tokens, so no compute is spent on padding. Each
 * example keeps its own segment id (the trainer builds a block-diagonal causal mask from them) and its positions
 * restart at 0; the first label of every example is masked, so no position predicts across a boundary.
 * Rows are filled first-fit by decreasing length (fewest rows, least padding), deterministically.
 */
import { IGNORE_INDEX } from './records.ts';
import { DatasetError } from './problems.ts';

export interface PackableExample {
  readonly inputIds: readonly number[];
  readonly labels: readonly number[];
  readonly line?: number;
}

export interface PackedRow {
  readonly inputIds: number[];
  readonly labels: number[];
  /** Restart at 0 for each example. */
  readonly positionIds: number[];
  /** 0, 1, 2, ... per example in the row. */
  readonly segmentIds: number[];
  /** Indices of the packed examples, in row order. */
  readonly examples: number[];
}

export interface PackOptions {
  readonly maxLength: number;
  /** 'first-fit-decreasing' (default; fewest rows) or 'in-order' (greedy, keeps the examples' order). */
  readonly strategy?: 'first-fit-decreasing' | 'in-order';
}

/** Leftmost bin with room for a length, in O(log n): a max tree over the bins' free space. */
class FirstFitBins {
  private readonly size: number;
  private readonly tree: Int32Array;
  constructor(bins: number, capacity: number) {
    this.size = 1 << Math.ceil(Math.log2(Math.max(1, bins)));
    this.tree = new Int32Array(2 * this.size).fill(capacity);
  }
  /** Index of the leftmost bin with at least `length` free. */
  find(length: number): number {
    let node = 1;
    while (node < this.size) node = this.tree[2 * node]! >= length ? 2 * node : 2 * node + 1;
    return node - this.size;
  }
  take(bin: number, length: number): void {
    let node = bin + this.size;
    this.tree[node]! -= length;
    for (node >>= 1; node >= 1; node >>= 1) this.tree[node] = Math.max(this.tree[2 * node]!, this.tree[2 * node + 1]!);
  }
}

/** Groups example indices into rows. */
const planRows = (lengths: readonly number[], options: PackOptions): number[][] => {
  const { maxLength } = options;
  if ((options.strategy ?? 'first-fit-decreasing') === 'in-order') {
    const rows: number[][] = [];
    let row: number[] = [];
    let used = 0;
    lengths.forEach((len, i) => {
      if (row.length && used + len > maxLength) {
        rows.push(row);
        row = [];
        used = 0;
      }
      row.push(i);
      used += len;
    });
    if (row.length) rows.push(row);
    return rows;
  }
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const bins = new FirstFitBins(lengths.length, maxLength);
  const rows: number[][] = [];
  for (const i of order) {
    const bin = bins.find(lengths[i]!);
    bins.take(bin, lengths[i]!);
    (rows[bin] ??= []).push(i);
  }
  return rows;
};

/** Packs examples (each at most maxLength tokens: tokenize with that maxLength first) into rows. */
export const packExamples = (examples: readonly PackableExample[], options: PackOptions): PackedRow[] => {
  const { maxLength } = options;
  const lengths = examples.map((e, i) => {
    if (e.inputIds.length > maxLength) {
      throw new DatasetError(
        `example ${i}${e.line !== undefined ? ` (line ${e.line})` : ''} has ${e.inputIds.length} tokens, more than the packing length ${maxLength}; tokenize with maxLength ${maxLength}`,
      );
    }
    if (e.labels.length !== e.inputIds.length) throw new DatasetError(`example ${i} has ${e.inputIds.length} ids but ${e.labels.length} labels`);
    return e.inputIds.length;
  });
  return planRows(lengths, options).map((members) => {
    const row: PackedRow = { inputIds: [], labels: [], positionIds: [], segmentIds: [], examples: members };
    members.forEach((index, segment) => {
      const e = examples[index]!;
      e.inputIds.forEach((id, t) => {
        row.inputIds.push(id);
        row.labels.push(t === 0 ? IGNORE_INDEX : e.labels[t]!);
        row.positionIds.push(t);
        row.segmentIds.push(segment);
      });
    });
    return row;
  });
};

/** Fraction of a (rows × maxLength) grid that holds real tokens. */
export const packingEfficiency = (rows: readonly PackedRow[], maxLength: number): number =>
  rows.length ? rows.reduce((n, r) => n + r.inputIds.length, 0) / (rows.length * maxLength) : 0;
