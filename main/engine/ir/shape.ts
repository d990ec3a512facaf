import type { Dim, Shape } from './types.ts';

/** Thrown while building a graph: names the op, the node and the shapes involved. */
export class ShapeError extends Error {
  constructor(
    readonly op: string,
    readonly node: string,
    detail: string,
  ) {
    super(`${op} '${node}': ${detail}`);
    this.name = 'ShapeError';
  }
}

interface DimTerm {
  coef: number;
  syms: string[]; // sorted
}

const parseDim = (d: Dim): DimTerm => {
  if (typeof d === 'number') return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split('*')) {
    const p = part.trim();
    if (/^\d+$/.test(p)) coef *= Number(p);
    else if (p) syms.push(p);
  }
  return { coef, syms: syms.sort() };
};

const formatDim = ({ coef, syms }: DimTerm): Dim => {
  if (syms.length === 0) return coef;
  if (coef === 0) return 0;
  return coef === 1 ? syms.join('*') : `${coef}*${syms.join('*')}`;
};

export const normDim = (d: Dim): Dim => formatDim(parseDim(d));
export const dimEq = (a: Dim, b: Dim): boolean => normDim(a) === normDim(b);
export const isStatic = (shape: Shape): shape is readonly number[] => shape.every((d) => typeof d === 'number');

export const mulDims = (a: Dim, b: Dim): Dim => {
  const x = parseDim(a);
  const y = parseDim(b);
  return formatDim({ coef: x.coef * y.coef, syms: [...x.syms, ...y.syms].sort() });
};

/** a / b when it divides exactly (symbols cancel), else undefined. */
export const divDim = (a: Dim, b: Dim): Dim | undefined => {
  const x = parseDim(a);
  const y = parseDim(b);
  if (y.coef === 0 || x.coef % y.coef !== 0) return undefined;
  const syms = [...x.syms];
  for (const s of y.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return formatDim({ coef: x.coef / y.coef, syms });
};

export const numel = (shape: Shape): Dim => shape.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
export const staticNumel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const shapeStr = (shape: Shape): string => `[${shape.join(', ')}]`;
export const shapesEq = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));

/** Numpy broadcasting; undefined when the shapes do not broadcast. */
export const tryBroadcast = (a: Shape, b: Shape): Dim[] | undefined => {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (dimEq(da, db) || db === 1) out.push(normDim(da));
    else if (da === 1) out.push(normDim(db));
    else return undefined;
  }
  return out;
};

export const normAxis = (axis: number, rank: number, op: string, node: string): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ShapeError(op, node, `axis ${axis} out of range for rank ${rank}`);
  return a;
};

/**
 * Which axes of `full` were broadcast from `small` (to reduce a gradient back to `small`'s shape):
 * leading axes `small` lacks (dropped after summing), and axes where `small` has 1 (kept as size 1).
 */
export const broadcastAxes = (small: Shape, full: Shape): { axes: number[]; keepRank: number } => {
  const lead = full.length - small.length;
  const axes: number[] = [];
  for (let i = 0; i < full.length; i++) {
    if (i < lead) axes.push(i);
    else if (small[i - lead] === 1 && full[i] !== 1) axes.push(i);
  }
  return { axes, keepRank: lead };
};
