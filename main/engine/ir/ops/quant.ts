import type { Tensor } from '../graph.ts';
import { dimEq, divDim, normAxis } from '../shape.ts';
import { isFloat } from '../types.ts';
import { describe, expectCount } from './helpers.ts';
import { registerOp } from './registry.ts';

/**
 * Packs signed 4-bit values (−8..7) two per byte, low nibble first, as ONNX stores int4 tensors.
 * (uint4 values 0..15 pack the same way.)
 */
export const packInt4 = (values: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) {
    const nibble = values[i]! & 0x0f;
    out[i >> 1]! |= i & 1 ? nibble << 4 : nibble;
  }
  return out;
};

export interface DequantizeOptions {
  readonly axis?: number;
  /** Blocked quantization: one scale per `blockSize` elements along `axis` (0 = per-axis). */
  readonly blockSize?: number;
  readonly zeroPoint?: Tensor;
  readonly name?: string;
}

/** (x − zero_point) · scale for int4/uint4/uint8 x (frozen quantized weights; no gradient flows to x). */
export const dequantizeLinear = (x: Tensor, scale: Tensor, o: DequantizeOptions = {}): Tensor =>
  x.g.apply1('DequantizeLinear', o.zeroPoint ? [x, scale, o.zeroPoint] : [x, scale], { axis: o.axis ?? 1, block_size: o.blockSize ?? 0 }, { name: o.name });

registerOp({
  type: 'DequantizeLinear',
  infer: (inputs, attrs, ctx) => {
    expectCount(inputs, 2, 3, ctx);
    const [x, scale, zero] = inputs;
    if (!['int4', 'uint4', 'uint8', 'int32'].includes(x!.dtype)) ctx.fail(`cannot dequantize ${describe(x!)}`);
    if (!isFloat(scale!.dtype)) ctx.fail(`scale must be floating-point, got ${describe(scale!)}`);
    if (zero && zero.dtype !== x!.dtype) ctx.fail(`zero point ${describe(zero)} does not match ${describe(x!)}`);
    const block = Number(attrs.block_size ?? 0);
    if (block > 0 && scale!.shape.length === x!.shape.length) {
      const axis = normAxis(Number(attrs.axis ?? 1), x!.shape.length, ctx.op, ctx.node);
      const blocks = divDim(x!.shape[axis]!, block);
      const ok = blocks !== undefined && scale!.shape.every((d, i) => dimEq(d, i === axis ? blocks : x!.shape[i]!));
      if (!ok) ctx.fail(`scale ${describe(scale!)} does not fit ${describe(x!)} in blocks of ${block} along axis ${axis}`);
    }
    return [{ dtype: scale!.dtype, shape: x!.shape }];
  },
});
