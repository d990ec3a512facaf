import type { Tensor } from '../graph.ts';
import { shapeStr, tryBroadcast } from '../shape.ts';
import type { DType, TensorType } from '../types.ts';
import { isFloat } from '../types.ts';
import type { InferCtx } from './registry.ts';

export const describe = (t: TensorType): string => `${t.dtype}${shapeStr(t.shape)}`;

export const expectCount = (inputs: readonly TensorType[], min: number, max: number, ctx: InferCtx): void => {
  if (inputs.length < min || inputs.length > max) {
    ctx.fail(`expects ${min === max ? min : `${min}..${max}`} inputs, got ${inputs.length}`);
  }
};

export const sameDtype = (inputs: readonly TensorType[], ctx: InferCtx): DType => {
  const first = inputs[0]!.dtype;
  for (const t of inputs) {
    if (t.dtype !== first) ctx.fail(`mixed dtypes: ${inputs.map(describe).join(' and ')}`);
  }
  return first;
};

export const expectFloat = (t: TensorType, ctx: InferCtx): void => {
  if (!isFloat(t.dtype)) ctx.fail(`needs a floating-point input, got ${describe(t)}`);
};

export const broadcastAll = (inputs: readonly TensorType[], ctx: InferCtx): TensorType['shape'] => {
  let shape = inputs[0]!.shape;
  for (const t of inputs.slice(1)) {
    const next = tryBroadcast(shape, t.shape);
    if (!next) ctx.fail(`shapes do not broadcast: ${inputs.map(describe).join(' and ')}`);
    shape = next;
  }
  return shape;
};

const scalarArray = (value: number, dtype: DType) => {
  switch (dtype) {
    case 'float64':
      return new Float64Array([value]);
    case 'int64':
      return new BigInt64Array([BigInt(value)]);
    case 'int32':
      return new Int32Array([value]);
    case 'float32':
      return new Float32Array([value]);
    default:
      throw new Error(`no scalar constant for dtype ${dtype}`);
  }
};

/** A scalar constant in `like`'s dtype (float16 scalars are stored as float32 and cast). */
export const scalarLike = (like: Tensor, value: number): Tensor => {
  const g = like.g;
  if (like.dtype === 'float16') {
    return g.apply1('Cast', [g.constant(new Float32Array([value]), 'float32')], { to: 'float16' });
  }
  return g.constant(scalarArray(value, like.dtype), like.dtype);
};

export const lift = (v: Tensor | number, like: Tensor): Tensor => (typeof v === 'number' ? scalarLike(like, v) : v);
