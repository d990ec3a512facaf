import type { Tensor } from '../graph.ts';
import { normAxis, numel } from '../shape.ts';
import type { Attrs, Dim, TensorType } from '../types.ts';
import { expectCount, expectFloat } from './helpers.ts';
import { registerOp } from './registry.ts';
import type { EmitCtx, InferCtx, VjpCtx } from './registry.ts';
import { div, equal, exp, mul, sub } from './elementwise.ts';
import { cast, dimScalar, expand, unsqueeze } from './shape-ops.ts';

export interface ReduceOptions {
  readonly keepdims?: boolean;
  readonly name?: string;
}
const reduceWith =
  (op: string) =>
  (x: Tensor, axes: readonly number[], o: ReduceOptions = {}): Tensor =>
    x.g.apply1(op, [x], { axes, keepdims: o.keepdims === false ? 0 : 1 }, { name: o.name });
export const reduceSum = reduceWith('ReduceSum');
export const reduceMean = reduceWith('ReduceMean');
export const reduceMax = reduceWith('ReduceMax');
export const softmax = (x: Tensor, axis = -1, name?: string): Tensor => x.g.apply1('Softmax', [x], { axis }, { name });
export const logSoftmax = (x: Tensor, axis = -1, name?: string): Tensor =>
  x.g.apply1('LogSoftmax', [x], { axis }, { name });

const axesOf = (attrs: Attrs, rank: number, ctx: Pick<InferCtx, 'op' | 'node'>): number[] => {
  const raw = (attrs.axes as readonly number[] | undefined) ?? [];
  // ONNX: no axes = reduce all.
  return raw.length === 0 ? [...Array(rank).keys()] : raw.map((a) => normAxis(a, rank, ctx.op, ctx.node));
};

const reduceInfer = (inputs: readonly TensorType[], attrs: Attrs, ctx: InferCtx): TensorType[] => {
  expectCount(inputs, 1, 1, ctx);
  const x = inputs[0]!;
  const axes = axesOf(attrs, x.shape.length, ctx);
  const keep = attrs.keepdims !== 0;
  const shape = x.shape.flatMap((d, i): Dim[] => (axes.includes(i) ? (keep ? [1] : []) : [d]));
  return [{ dtype: x.dtype, shape }];
};

const reduceEmit = (e: EmitCtx): void =>
  e.add(
    e.node.op,
    [e.inputs[0]!, e.int64s(axesOf(e.node.attrs, e.inputTypes[0]!.shape.length, { op: e.node.op, node: e.node.name }))],
    e.outputs,
    { keepdims: e.node.attrs.keepdims === 0 ? 0 : 1 },
  );

/** Brings a reduced tensor back to the input's shape (unsqueeze dropped axes, then broadcast). */
const unreduce = (c: VjpCtx, t: Tensor): Tensor => {
  const x = c.x[0]!;
  const axes = axesOf(c.attrs, x.rank, { op: c.node.op, node: c.node.name });
  const kept = c.attrs.keepdims === 0 ? unsqueeze(t, axes) : t;
  return expand(kept, x.shape);
};

const reducedCount = (c: VjpCtx): Dim => {
  const x = c.x[0]!;
  const axes = axesOf(c.attrs, x.rank, { op: c.node.op, node: c.node.name });
  return numel(axes.map((a) => x.shape[a]!));
};

registerOp({
  type: 'ReduceSum',
  irOnlyAttrs: ['axes', 'keepdims'],
  infer: reduceInfer,
  emit: reduceEmit,
  vjp: (c) => [c.needs[0] ? unreduce(c, c.gy[0]!) : undefined],
});

registerOp({
  type: 'ReduceMean',
  irOnlyAttrs: ['axes', 'keepdims'],
  infer: reduceInfer,
  emit: reduceEmit,
  vjp: (c) => [c.needs[0] ? div(unreduce(c, c.gy[0]!), dimScalar(c.g, reducedCount(c), c.x[0]!.dtype)) : undefined],
});

registerOp({
  type: 'ReduceMax',
  irOnlyAttrs: ['axes', 'keepdims'],
  infer: reduceInfer,
  emit: reduceEmit,
  // Ties share the gradient evenly, as torch.amax does.
  vjp: (c) => {
    if (!c.needs[0]) return [undefined];
    const x = c.x[0]!;
    const axes = axesOf(c.attrs, x.rank, { op: c.node.op, node: c.node.name });
    const hit = cast(equal(x, unreduce(c, c.y[0]!)), x.dtype);
    const ties = reduceSum(hit, axes);
    const gy = c.attrs.keepdims === 0 ? unsqueeze(c.gy[0]!, axes) : c.gy[0]!;
    return [mul(hit, div(gy, ties))];
  },
});

const softmaxInfer = (inputs: readonly TensorType[], attrs: Attrs, ctx: InferCtx): TensorType[] => {
  expectCount(inputs, 1, 1, ctx);
  expectFloat(inputs[0]!, ctx);
  normAxis(Number(attrs.axis ?? -1), inputs[0]!.shape.length, ctx.op, ctx.node);
  return [inputs[0]!];
};

registerOp({
  type: 'Softmax',
  infer: softmaxInfer,
  vjp: ({ y: [y], gy: [gy], needs, attrs }) => {
    if (!needs[0]) return [undefined];
    const axis = Number(attrs.axis ?? -1);
    const dot = reduceSum(mul(gy!, y!), [axis]);
    return [mul(y!, sub(gy!, dot))];
  },
});

registerOp({
  type: 'LogSoftmax',
  infer: softmaxInfer,
  vjp: ({ y: [y], gy: [gy], needs, attrs }) => {
    if (!needs[0]) return [undefined];
    const axis = Number(attrs.axis ?? -1);
    return [sub(gy!, mul(exp(y!), reduceSum(gy!, [axis])))];
  },
});
