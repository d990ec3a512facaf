import type { GraphBuilder, Tensor } from '../graph.ts';
import { ShapeError, dimEq, normAxis, normDim, shapeStr } from '../shape.ts';
import type { Attrs, Dim, Shape, TensorType } from '../types.ts';
import { describe, expectCount } from './helpers.ts';
import { registerOp } from './registry.ts';
import type { InferCtx, VjpCtx } from './registry.ts';
import { cast, transpose, unsqueeze, zeros } from './shape-ops.ts';

const dimsAttr = (v: unknown): Dim[] => (Array.isArray(v) ? (v as Dim[]) : []);
const numsAttr = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : []);
const asAttr = (dims: readonly Dim[]): string[] => dims as Dim[] as string[];

/** An `ends` value meaning "to the end of the axis" (ONNX writes INT64_MAX; JS numbers stop at 2^53). */
export const END = Number.MAX_SAFE_INTEGER;
/** Ends at or above this count as "to the end" on a symbolic axis (INT32_MAX, as exporters write it). */
const TO_END = 2 ** 31 - 1;
const clampI64 = (v: number): number => Math.max(-END, Math.min(END, Math.trunc(v)));

// --- dim arithmetic: sums of dims as linear expressions over monomials ('' holds the constant) ---
type Lin = Map<string, number>;
const DIFF = /^\((.+)-(\d+)\)$/;
const lin = (d: Dim, scale = 1, into: Lin = new Map()): Lin => {
  const put = (k: string, c: number): void => void into.set(k, (into.get(k) ?? 0) + c);
  const n = normDim(d);
  if (typeof n === 'number') return put('', scale * n), into;
  let coef = scale;
  const syms: string[] = [];
  for (const f of n.split('*')) if (/^\d+$/.test(f)) coef *= Number(f); else syms.push(f);
  const diff = syms.length === 1 ? DIFF.exec(syms[0]!) : null;
  if (diff) return lin(diff[1]!, coef, into), put('', -coef * Number(diff[2])), into;
  return put(syms.join('*'), coef), into;
};
const linSum = (terms: readonly (readonly [Dim, number])[]): Lin => {
  const out: Lin = new Map();
  for (const [d, s] of terms) lin(d, s, out);
  return out;
};
/** A dim for a linear expression: a constant ≥ 0, c·monomial, or c·(sym−n); undefined when not expressible. */
const fmtLin = (l: Lin): Dim | undefined => {
  const c = l.get('') ?? 0;
  const terms = [...l].filter(([k, v]) => k !== '' && v !== 0);
  if (terms.length === 0) return c >= 0 ? c : undefined;
  const [k, coef] = terms[0]!;
  if (terms.length > 1 || coef < 0) return undefined;
  if (c === 0) return normDim(coef === 1 ? k : `${coef}*${k}`);
  // c·(k − n): `(seq-1)`, `2*(seq-1)`.
  return c < 0 && -c % coef === 0 && !k.includes('*') ? normDim(`${coef}*(${k}-${-c / coef})`) : undefined;
};
const linConst = (l: Lin): number | undefined => ([...l].every(([k, v]) => k === '' || v === 0) ? (l.get('') ?? 0) : undefined);
/**
 * Σ dims, e.g. `(seq-1)` + 1 = `seq`. A sum of plain symbols is spelled `(past+seq)` (sorted, so the order of
 * the terms does not matter), as a KV cache's concatenation needs; other sums are undefined (e.g. `seq+1`).
 */
export const addDims = (dims: readonly Dim[]): Dim | undefined => {
  const exact = fmtLin(linSum(dims.map((d) => [d, 1] as const)));
  if (exact !== undefined) return exact;
  const terms = dims.map(normDim);
  const atoms = terms.every((d) => typeof d === 'string' && /^[A-Za-z_][\w.]*$/.test(d));
  return atoms && terms.length > 1 ? `(${[...(terms as string[])].sort().join('+')})` : undefined;
};

// --- graph-building helpers ---
export const concat = (xs: readonly Tensor[], axis: number, name?: string): Tensor => {
  if (xs.length === 0) throw new Error('concat needs at least one tensor');
  return xs[0]!.g.apply1('Concat', xs, { axis }, { name });
};
/** Splits `x` along `axis` into pieces of the given (possibly symbolic) sizes. */
export const split = (x: Tensor, sizes: readonly Dim[], axis: number, name?: string): Tensor[] =>
  x.g.apply('Split', [x], { sizes: asAttr(sizes), axis }, { name });
export interface SliceSpec {
  readonly starts: readonly number[];
  /** Use `END` for "to the end". */
  readonly ends: readonly number[];
  readonly axes?: readonly number[];
  readonly steps?: readonly number[];
}
export const slice = (x: Tensor, s: SliceSpec, name?: string): Tensor =>
  x.g.apply1(
    'Slice',
    [x],
    { starts: s.starts, ends: s.ends.map(clampI64), axes: s.axes ?? s.starts.map((_, i) => i), steps: s.steps ?? s.starts.map(() => 1) },
    { name },
  );
/** Constant padding; `pads` is ONNX's [begin_0, …, begin_n, end_0, …, end_n] and may hold symbolic dims. */
export const pad = (x: Tensor, pads: readonly Dim[], value = 0, name?: string): Tensor =>
  x.g.apply1('Pad', [x], { pads: asAttr(pads), value }, { name });
export const gather = (data: Tensor, indices: Tensor, axis = 0, name?: string): Tensor =>
  data.g.apply1('Gather', [data, indices], { axis }, { name });
export const gatherElements = (data: Tensor, indices: Tensor, axis = 0, name?: string): Tensor =>
  data.g.apply1('GatherElements', [data, indices], { axis }, { name });
/** ONNX ScatterElements with reduction 'add': data[…, indices[i], …] += updates[i] along `axis`. */
export const scatterElementsAdd = (data: Tensor, indices: Tensor, updates: Tensor, axis = 0, name?: string): Tensor =>
  data.g.apply1('ScatterElements', [data, indices, updates], { axis, reduction: 'add' }, { name });
/** ONNX ScatterND with reduction 'add': data[indices[i]] += updates[i]. */
export const scatterNDAdd = (data: Tensor, indices: Tensor, updates: Tensor, name?: string): Tensor =>
  data.g.apply1('ScatterND', [data, indices, updates], { reduction: 'add' }, { name });
export const scatterND = scatterNDAdd;
export const gatherND = (data: Tensor, indices: Tensor, name?: string): Tensor =>
  data.g.apply1('GatherND', [data, indices], {}, { name });
/** int64 [0, 1, …, size−1]; a symbolic size is read at run time. */
export const range = (g: GraphBuilder, size: Dim, name?: string): Tensor =>
  g.apply1('Range', [], { size: typeof size === 'number' ? size : String(size) }, { name });

const isIndex = (t: TensorType): boolean => t.dtype === 'int64' || t.dtype === 'int32';
const expectIndex = (t: TensorType, ctx: InferCtx): void => {
  if (!isIndex(t)) ctx.fail(`indices must be int64 or int32, got ${describe(t)}`);
};
const vjpFail = (c: VjpCtx, detail: string): never => {
  throw new ShapeError(c.node.op, c.node.name, `no VJP: ${detail}`);
};

registerOp({
  type: 'Concat',
  infer: (inputs, attrs, ctx) => {
    if (inputs.length === 0) ctx.fail('needs at least one input');
    const first = inputs[0]!;
    const a = normAxis(Number(attrs.axis ?? 0), first.shape.length, ctx.op, ctx.node);
    for (const t of inputs) {
      if (t.dtype !== first.dtype || t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== a && !dimEq(d, first.shape[i]!))) {
        ctx.fail(`inputs do not concatenate along axis ${a}: ${inputs.map(describe).join(', ')}`);
      }
    }
    const sizes = inputs.map((t) => t.shape[a]!);
    const total = addDims(sizes) ?? ctx.fail(`the size ${sizes.join(' + ')} along axis ${a} is not expressible as a dim`);
    return [{ dtype: first.dtype, shape: first.shape.map((d, i) => (i === a ? total : normDim(d))) }];
  },
  vjp: (c) => {
    const a = normAxis(Number(c.attrs.axis ?? 0), c.x[0]!.rank, c.node.op, c.node.name);
    if (c.x.length === 1) return [c.needs[0] ? c.gy[0] : undefined];
    const parts = split(c.gy[0]!, c.x.map((x) => x.shape[a]!), a);
    return c.x.map((_, i) => (c.needs[i] ? parts[i] : undefined));
  },
});

registerOp({
  type: 'Split',
  irOnlyAttrs: ['sizes', 'axis'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 1, 1, ctx);
    const x = inputs[0]!;
    const a = normAxis(Number(attrs.axis ?? 0), x.shape.length, ctx.op, ctx.node);
    const sizes = dimsAttr(attrs.sizes);
    if (sizes.length === 0) ctx.fail('needs at least one size');
    const total = addDims(sizes);
    if (total === undefined || !dimEq(total, x.shape[a]!)) {
      ctx.fail(`sizes ${shapeStr(sizes)} do not add up to dim ${x.shape[a]} of ${describe(x)} (axis ${a})`);
    }
    return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? normDim(s) : d)) }));
  },
  emit: (e) =>
    e.add('Split', [e.inputs[0]!, e.shape(dimsAttr(e.node.attrs.sizes))], e.outputs, {
      axis: normAxis(Number(e.node.attrs.axis ?? 0), e.inputTypes[0]!.shape.length, e.node.op, e.node.name),
    }),
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const a = normAxis(Number(c.attrs.axis ?? 0), c.x[0]!.rank, c.node.op, c.node.name);
    const parts = c.y.map((y, i) => c.gy[i] ?? zeros(y, y.dtype, y.shape));
    return [parts.length === 1 ? parts[0] : concat(parts, a)];
  },
});

interface SliceAxis {
  readonly axis: number;
  readonly start: number;
  readonly end: number;
  readonly step: number;
}
const sliceAxes = (attrs: Attrs, rank: number, ctx: Pick<InferCtx, 'op' | 'node' | 'fail'>): SliceAxis[] => {
  const starts = numsAttr(attrs.starts);
  const ends = numsAttr(attrs.ends);
  const axes = attrs.axes === undefined ? starts.map((_, i) => i) : numsAttr(attrs.axes);
  const steps = attrs.steps === undefined ? starts.map(() => 1) : numsAttr(attrs.steps);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length) {
    ctx.fail('starts, ends, axes and steps differ in length');
  }
  const out = starts.map((start, i) => ({ axis: normAxis(axes[i]!, rank, ctx.op, ctx.node), start, end: ends[i]!, step: steps[i]! }));
  if (new Set(out.map((s) => s.axis)).size !== out.length) ctx.fail('an axis is sliced twice');
  if (out.some((s) => s.step === 0 || ![s.start, s.end, s.step].every(Number.isInteger))) ctx.fail('starts, ends and steps must be integers, steps non-zero');
  return out;
};

/** The first index taken (`begin`) and the length of a slice of one axis of size `d`, as ONNX clamps them. */
const sliceDim = (d: Dim, s: SliceAxis): { begin?: Dim; len?: Dim } => {
  if (typeof d === 'number') {
    const norm = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v < 0 ? v + d : v));
    const [b, e] = s.step > 0 ? [norm(s.start, 0, d), norm(s.end, 0, d)] : [norm(s.start, 0, d - 1), norm(s.end, -1, d - 1)];
    return { begin: b, len: Math.max(0, Math.ceil((e - b) / s.step)) };
  }
  if (s.step < 0) return {};
  // A symbolic axis is assumed long enough for the bounds (|start| ≤ d, |end| ≤ d).
  const begin = s.start >= 0 ? lin(s.start) : linSum([[d, 1], [s.start, 1]]);
  if (s.end >= 0 && s.end < TO_END) return { begin: fmtLin(begin) };
  const diff = linSum([[d, 1], [s.end >= TO_END ? 0 : s.end, 1]]);
  for (const [k, v] of begin) diff.set(k, (diff.get(k) ?? 0) - v);
  const c = linConst(diff);
  const len = c !== undefined ? Math.max(0, Math.ceil(c / s.step)) : s.step === 1 ? fmtLin(diff) : undefined;
  return { begin: fmtLin(begin), ...(len === undefined ? {} : { len }) };
};

registerOp({
  type: 'Slice',
  irOnlyAttrs: ['starts', 'ends', 'axes', 'steps'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 1, 1, ctx);
    const x = inputs[0]!;
    const shape = [...x.shape];
    for (const s of sliceAxes(attrs, x.shape.length, ctx)) {
      const d = x.shape[s.axis]!;
      shape[s.axis] =
        sliceDim(d, s).len ??
        ctx.fail(`slice [${s.start}:${s.end}:${s.step}] of symbolic dim '${d}' (axis ${s.axis} of ${describe(x)}) has no dim spelling`);
    }
    return [{ dtype: x.dtype, shape }];
  },
  emit: (e) => {
    const ax = sliceAxes(e.node.attrs, e.inputTypes[0]!.shape.length, {
      op: e.node.op,
      node: e.node.name,
      fail: (d) => {
        throw new ShapeError(e.node.op, e.node.name, d);
      },
    });
    const list = (f: (s: SliceAxis) => number): string => e.int64s(ax.map((s) => clampI64(f(s))));
    e.add('Slice', [e.inputs[0]!, list((s) => s.start), list((s) => s.end), list((s) => s.axis), list((s) => s.step)], e.outputs);
  },
  // Step 1: the gradient is gy padded with zeros back to the input's extent.
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const x = c.x[0]!;
    const ctx = { op: c.node.op, node: c.node.name, fail: (d: string): never => vjpFail(c, d) };
    const pads: Dim[] = Array<Dim>(2 * x.rank).fill(0);
    for (const s of sliceAxes(c.attrs, x.rank, ctx)) {
      if (s.step !== 1) vjpFail(c, `only step 1 is supported, axis ${s.axis} has step ${s.step}`);
      const d = x.shape[s.axis]!;
      const { begin, len } = sliceDim(d, s);
      const after = begin !== undefined && len !== undefined ? fmtLin(linSum([[d, 1], [begin, -1], [len, -1]])) : undefined;
      if (begin === undefined || after === undefined) return vjpFail(c, `the padding of axis ${s.axis} (dim '${d}') is not expressible`);
      pads[s.axis] = begin;
      pads[s.axis + x.rank] = after;
    }
    return [pads.every((p) => p === 0) ? c.gy[0] : pad(c.gy[0]!, pads)];
  },
});

registerOp({
  type: 'Pad',
  irOnlyAttrs: ['pads', 'value'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 1, 1, ctx);
    const x = inputs[0]!;
    const r = x.shape.length;
    const pads = dimsAttr(attrs.pads);
    if (pads.length !== 2 * r) ctx.fail(`needs ${2 * r} pads for ${describe(x)}, got ${pads.length}`);
    const shape = x.shape.map(
      (d, i) => addDims([d, pads[i]!, pads[i + r]!]) ?? ctx.fail(`padded dim ${d} + ${pads[i]} + ${pads[i + r]} (axis ${i}) is not expressible`),
    );
    return [{ dtype: x.dtype, shape }];
  },
  emit: (e) => {
    const value = e.scalar(Number(e.node.attrs.value ?? 0), e.inputTypes[0]!.dtype);
    e.add('Pad', [e.inputs[0]!, e.shape(dimsAttr(e.node.attrs.pads)), value], e.outputs, { mode: 'constant' });
  },
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const r = c.x[0]!.rank;
    const pads = dimsAttr(c.attrs.pads);
    if (pads.some((p) => typeof p !== 'number' || p < 0)) vjpFail(c, `needs static non-negative pads, got ${shapeStr(pads)}`);
    const axes = [...Array(r).keys()].filter((i) => pads[i] !== 0 || pads[i + r] !== 0);
    if (axes.length === 0) return [c.gy[0]];
    const p = pads as number[];
    return [slice(c.gy[0]!, { starts: axes.map((i) => p[i]!), ends: axes.map((i) => (p[i + r]! > 0 ? -p[i + r]! : END)), axes })];
  },
});

registerOp({
  type: 'Gather',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 2, ctx);
    const [data, idx] = [inputs[0]!, inputs[1]!];
    expectIndex(idx, ctx);
    const a = normAxis(Number(attrs.axis ?? 0), data.shape.length, ctx.op, ctx.node);
    return [{ dtype: data.dtype, shape: [...data.shape.slice(0, a), ...idx.shape, ...data.shape.slice(a + 1)] }];
  },
  // Move the gathered axis to the front, scatter-add the rows back, move it home.
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const [data, idx] = [c.x[0]!, c.x[1]!];
    const gy = c.gy[0]!;
    const a = normAxis(Number(c.attrs.axis ?? 0), data.rank, c.node.op, c.node.name);
    const q = idx.rank;
    const lead = (n: number): number[] => [...Array(n).keys()];
    const gyT = a === 0 ? gy : transpose(gy, [...lead(q).map((i) => a + i), ...lead(a), ...lead(gy.rank - a - q).map((i) => a + q + i)]);
    const rest = [...data.shape.slice(0, a), ...data.shape.slice(a + 1)];
    const into = zeros(data, data.dtype, [data.shape[a]!, ...rest]);
    const out = scatterNDAdd(into, unsqueeze(cast(idx, 'int64'), [q]), gyT);
    return [a === 0 ? out : transpose(out, [...lead(a).map((i) => i + 1), 0, ...lead(data.rank - a - 1).map((i) => a + 1 + i)]), undefined];
  },
});

registerOp({
  type: 'GatherElements',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 2, ctx);
    const [data, idx] = [inputs[0]!, inputs[1]!];
    expectIndex(idx, ctx);
    if (idx.shape.length !== data.shape.length) ctx.fail(`data ${describe(data)} and indices ${describe(idx)} differ in rank`);
    normAxis(Number(attrs.axis ?? 0), data.shape.length, ctx.op, ctx.node);
    return [{ dtype: data.dtype, shape: idx.shape }];
  },
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const data = c.x[0]!;
    return [scatterElementsAdd(zeros(data, data.dtype, data.shape), c.x[1]!, c.gy[0]!, Number(c.attrs.axis ?? 0)), undefined];
  },
});

const expectAdd = (attrs: Attrs, ctx: InferCtx): void => {
  if (attrs.reduction !== 'add') ctx.fail(`only reduction 'add' is supported, got '${String(attrs.reduction ?? 'none')}'`);
};

registerOp({
  type: 'ScatterElements',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 3, 3, ctx);
    expectAdd(attrs, ctx);
    const [data, idx, upd] = [inputs[0]!, inputs[1]!, inputs[2]!];
    expectIndex(idx, ctx);
    normAxis(Number(attrs.axis ?? 0), data.shape.length, ctx.op, ctx.node);
    if (upd.dtype !== data.dtype || idx.shape.length !== data.shape.length || !idx.shape.every((d, i) => dimEq(d, upd.shape[i] ?? -1)) || upd.shape.length !== idx.shape.length) {
      ctx.fail(`needs indices and updates of one shape and data's rank: ${inputs.map(describe).join(', ')}`);
    }
    return [data];
  },
  vjp: (c) => [
    c.needs[0] ? c.gy[0] : undefined,
    undefined,
    c.needs[2] ? gatherElements(c.gy[0]!, c.x[1]!, Number(c.attrs.axis ?? 0)) : undefined,
  ],
});

/** The shape indices [..., k] pick out of data: indices.shape[:-1] + data.shape[k:]. */
const ndShape = (data: TensorType, idx: TensorType, ctx: InferCtx): Shape => {
  expectIndex(idx, ctx);
  const k = idx.shape[idx.shape.length - 1];
  if (typeof k !== 'number' || k < 1 || k > data.shape.length) ctx.fail(`indices ${describe(idx)} need a static last dim in 1..${data.shape.length}`);
  return [...idx.shape.slice(0, -1), ...data.shape.slice(k)];
};

registerOp({
  type: 'ScatterND',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 3, 3, ctx);
    expectAdd(attrs, ctx);
    const [data, idx, upd] = [inputs[0]!, inputs[1]!, inputs[2]!];
    if (idx.dtype !== 'int64') ctx.fail(`indices must be int64, got ${describe(idx)}`);
    const want = ndShape(data, idx, ctx);
    if (upd.dtype !== data.dtype || upd.shape.length !== want.length || !want.every((d, i) => dimEq(d, upd.shape[i]!))) {
      ctx.fail(`updates must be ${data.dtype}${shapeStr(want)}, got ${describe(upd)}`);
    }
    return [data];
  },
  vjp: (c) => [c.needs[0] ? c.gy[0] : undefined, undefined, c.needs[2] ? gatherND(c.gy[0]!, c.x[1]!) : undefined],
});

registerOp({
  type: 'GatherND',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 2, ctx);
    if (Number(attrs.batch_dims ?? 0) !== 0) ctx.fail('only batch_dims 0 is supported');
    if (inputs[1]!.dtype !== 'int64') ctx.fail(`indices must be int64, got ${describe(inputs[1]!)}`);
    return [{ dtype: inputs[0]!.dtype, shape: ndShape(inputs[0]!, inputs[1]!, ctx) }];
  },
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const data = c.x[0]!;
    return [scatterNDAdd(zeros(data, data.dtype, data.shape), c.x[1]!, c.gy[0]!), undefined];
  },
});

registerOp({
  type: 'Range',
  irOnlyAttrs: ['size'],
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 0, 0, ctx);
    const raw = attrs.size;
    const size = typeof raw === 'number' || typeof raw === 'string' ? raw : ctx.fail('needs a size');
    return [{ dtype: 'int64', shape: [normDim(size)] }];
  },
  emit: (e) => {
    const size = normDim(e.node.attrs.size as Dim);
    let limit: string;
    if (typeof size === 'number') limit = e.scalar(size, 'int64');
    else {
      limit = e.tmp('limit');
      e.add('Reshape', [e.shape([size]), e.int64s([])], [limit]);
    }
    e.add('Range', [e.scalar(0, 'int64'), limit, e.scalar(1, 'int64')], e.outputs);
  },
});
