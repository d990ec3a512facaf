import type { Tensor } from '../graph.ts';
import { divDim, normAxis, normDim, numel, shapeStr, tryBroadcast } from '../shape.ts';
import type { DType, Dim, Shape } from '../types.ts';
import { isFloat } from '../types.ts';
import { describe, expectCount } from './helpers.ts';
import { registerOp } from './registry.ts';
import type { EmitCtx } from './registry.ts';

const dimsAttr = (v: unknown): Dim[] => (Array.isArray(v) ? (v as Dim[]) : []);
const numsAttr = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : []);

// --- graph-building helpers ---
/** `dims` may hold 0 (copy the input dim) and one -1 (infer), as ONNX Reshape; symbols are read at run time. */
export const reshape = (x: Tensor, dims: Shape, name?: string): Tensor =>
  x.g.apply1('Reshape', [x], { shape: dims as Dim[] as string[] }, { name });
export const transpose = (x: Tensor, perm: readonly number[], name?: string): Tensor =>
  x.g.apply1('Transpose', [x], { perm }, { name });
/** Swaps the last two axes. */
export const transposeLast = (x: Tensor): Tensor => {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
};
export const expand = (x: Tensor, dims: Shape, name?: string): Tensor =>
  x.g.apply1('Expand', [x], { shape: dims as Dim[] as string[] }, { name });
export const unsqueeze = (x: Tensor, axes: readonly number[], name?: string): Tensor =>
  x.g.apply1('Unsqueeze', [x], { axes }, { name });
export const squeeze = (x: Tensor, axes: readonly number[], name?: string): Tensor =>
  x.g.apply1('Squeeze', [x], { axes }, { name });
export const cast = (x: Tensor, to: DType, name?: string): Tensor =>
  x.dtype === to ? x : x.g.apply1('Cast', [x], { to }, { name });
export const zeros = (like: { g: Tensor['g'] }, dtype: DType, shape: Shape): Tensor =>
  like.g.apply1('Zeros', [], { dtype, shape: shape as Dim[] as string[] });
/** The run-time value of a (possibly symbolic) dim as a scalar. */
export const dimScalar = (g: Tensor['g'], dim: Dim, dtype: DType): Tensor =>
  g.apply1('DimScalar', [], { dim: String(dim), dtype });

registerOp({
  type: 'Reshape',
  irOnlyAttrs: ['shape'],
  infer: ([x], attrs, ctx) => {
    const target = dimsAttr(attrs.shape);
    const out: Dim[] = target.map((d, i) => (d === 0 ? (x!.shape[i] ?? ctx.fail(`dim 0 at ${i} has no input dim`)) : normDim(d)));
    const unknown = out.indexOf(-1);
    if (out.indexOf(-1, unknown + 1) >= 0) ctx.fail('more than one -1 in the target shape');
    const known = out.filter((d) => d !== -1).reduce<Dim>((a, d) => numel([a, d]), 1);
    if (unknown >= 0) {
      out[unknown] = divDim(numel(x!.shape), known) ?? ctx.fail(`cannot reshape ${describe(x!)} to ${shapeStr(target)}`);
    } else if (normDim(numel(out)) !== normDim(numel(x!.shape))) {
      ctx.fail(`cannot reshape ${describe(x!)} to ${shapeStr(target)}`);
    }
    return [{ dtype: x!.dtype, shape: out }];
  },
  emit: (e) => e.add('Reshape', [e.inputs[0]!, e.shape(dimsAttr(e.node.attrs.shape))], e.outputs),
  vjp: (c) => [c.needs[0] ? reshape(c.gy[0]!, c.x[0]!.shape) : undefined],
});

registerOp({
  type: 'Transpose',
  infer: ([x], attrs, ctx) => {
    const perm = numsAttr(attrs.perm);
    if (perm.length !== x!.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      ctx.fail(`perm [${perm}] does not fit ${describe(x!)}`);
    }
    return [{ dtype: x!.dtype, shape: perm.map((p) => x!.shape[p]!) }];
  },
  vjp: (c) => {
    const perm = numsAttr(c.attrs.perm);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [c.needs[0] ? transpose(c.gy[0]!, inverse) : undefined];
  },
});

registerOp({
  type: 'Expand',
  irOnlyAttrs: ['shape'],
  infer: ([x], attrs, ctx) => {
    const shape =
      tryBroadcast(x!.shape, dimsAttr(attrs.shape)) ??
      ctx.fail(`cannot expand ${describe(x!)} to ${shapeStr(dimsAttr(attrs.shape))}`);
    return [{ dtype: x!.dtype, shape }];
  },
  emit: (e) => e.add('Expand', [e.inputs[0]!, e.shape(dimsAttr(e.node.attrs.shape))], e.outputs),
  // The autodiff sums the broadcast axes back.
  vjp: (c) => [c.needs[0] ? c.gy[0] : undefined],
});

const axesEmit = (opType: string) => (e: EmitCtx): void =>
  e.add(opType, [e.inputs[0]!, e.int64s(numsAttr(e.node.attrs.axes))], e.outputs);

registerOp({
  type: 'Unsqueeze',
  irOnlyAttrs: ['axes'],
  infer: ([x], attrs, ctx) => {
    const rank = x!.shape.length + numsAttr(attrs.axes).length;
    const axes = numsAttr(attrs.axes).map((a) => normAxis(a, rank, ctx.op, ctx.node));
    const rest = [...x!.shape];
    const out = Array.from({ length: rank }, (_, i): Dim => (axes.includes(i) ? 1 : rest.shift()!));
    return [{ dtype: x!.dtype, shape: out }];
  },
  emit: axesEmit('Unsqueeze'),
  vjp: (c) => [c.needs[0] ? squeeze(c.gy[0]!, numsAttr(c.attrs.axes)) : undefined],
});

registerOp({
  type: 'Squeeze',
  irOnlyAttrs: ['axes'],
  infer: ([x], attrs, ctx) => {
    const axes = numsAttr(attrs.axes).map((a) => normAxis(a, x!.shape.length, ctx.op, ctx.node));
    for (const a of axes) if (x!.shape[a] !== 1) ctx.fail(`axis ${a} of ${describe(x!)} is not 1`);
    return [{ dtype: x!.dtype, shape: x!.shape.filter((_, i) => !axes.includes(i)) }];
  },
  emit: axesEmit('Squeeze'),
  vjp: (c) => [c.needs[0] ? unsqueeze(c.gy[0]!, numsAttr(c.attrs.axes)) : undefined],
});

const ONNX_DTYPE_CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, bfloat16: 16, uint4: 21, int4: 22,
};
export const onnxDtypeCode = (dtype: DType): number => ONNX_DTYPE_CODE[dtype];

registerOp({
  type: 'Cast',
  irOnlyAttrs: ['to'],
  infer: ([x], attrs, ctx) => {
    expectCount([x!], 1, 1, ctx);
    return [{ dtype: attrs.to as DType, shape: x!.shape }];
  },
  emit: (e) => e.add('Cast', e.inputs, e.outputs, { to: ONNX_DTYPE_CODE[e.node.attrs.to as DType] }),
  vjp: (c) => [c.needs[0] && isFloat(c.x[0]!.dtype) ? cast(c.gy[0]!, c.x[0]!.dtype) : undefined],
});

registerOp({
  type: 'Zeros',
  irOnlyAttrs: ['dtype', 'shape'],
  infer: (_inputs, attrs) => [{ dtype: attrs.dtype as DType, shape: dimsAttr(attrs.shape).map(normDim) }],
  emit: (e) => {
    const dims = dimsAttr(e.node.attrs.shape);
    const zero = e.scalar(0, e.node.attrs.dtype as DType);
    if (dims.length === 0) e.add('Identity', [zero], e.outputs);
    else e.add('Expand', [zero, e.shape(dims)], e.outputs);
  },
});

registerOp({
  type: 'DimScalar',
  irOnlyAttrs: ['dim', 'dtype'],
  infer: (_inputs, attrs) => [{ dtype: attrs.dtype as DType, shape: [] }],
  emit: (e) => {
    const raw = String(e.node.attrs.dim);
    const dim: Dim = /^-?\d+$/.test(raw) ? Number(raw) : raw;
    const asFloat = e.tmp('cast');
    e.add('Cast', [e.shape([dim])], [asFloat], { to: ONNX_DTYPE_CODE[e.node.attrs.dtype as DType] });
    e.add('Reshape', [asFloat, e.int64s([])], e.outputs);
  },
});

