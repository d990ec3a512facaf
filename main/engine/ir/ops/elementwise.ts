import type { Tensor } from '../graph.ts';
import type { Attrs, TensorType } from '../types.ts';
import { broadcastAll, expectCount, expectFloat, lift, sameDtype } from './helpers.ts';
import { registerOp } from './registry.ts';
import type { InferCtx, VjpCtx } from './registry.ts';

const binaryInfer = (inputs: readonly TensorType[], _attrs: Attrs, ctx: InferCtx): TensorType[] => {
  expectCount(inputs, 2, 2, ctx);
  return [{ dtype: sameDtype(inputs, ctx), shape: broadcastAll(inputs, ctx) }];
};

const unaryFloatInfer = (inputs: readonly TensorType[], _attrs: Attrs, ctx: InferCtx): TensorType[] => {
  expectCount(inputs, 1, 1, ctx);
  expectFloat(inputs[0]!, ctx);
  return [inputs[0]!];
};

const compareInfer = (inputs: readonly TensorType[], attrs: Attrs, ctx: InferCtx): TensorType[] => [
  { dtype: 'bool', shape: binaryInfer(inputs, attrs, ctx)[0]!.shape },
];

// --- helpers for building graphs (and for VJP rules) ---
const un = (op: string) => (x: Tensor, name?: string): Tensor => x.g.apply1(op, [x], {}, { name });
const bin =
  (op: string) =>
  (a: Tensor | number, b: Tensor | number, name?: string): Tensor => {
    const ref = typeof a === 'number' ? (b as Tensor) : a;
    return ref.g.apply1(op, [lift(a, ref), lift(b, ref)], {}, { name });
  };

export const add = bin('Add');
export const sub = bin('Sub');
export const mul = bin('Mul');
export const div = bin('Div');
export const pow = bin('Pow');
export const maximum = bin('Max');
export const minimum = bin('Min');
export const neg = un('Neg');
export const exp = un('Exp');
export const log = un('Log');
export const sqrt = un('Sqrt');
export const sigmoid = un('Sigmoid');
export const tanh = un('Tanh');
export const erf = un('Erf');
export const sin = un('Sin');
export const cos = un('Cos');
export const reciprocal = un('Reciprocal');
export const relu = un('Relu');
export const abs = un('Abs');
export const sign = un('Sign');
export const identity = un('Identity');
export const equal = bin('Equal');
export const less = bin('Less');
export const lessOrEqual = bin('LessOrEqual');
export const greater = bin('Greater');
export const greaterOrEqual = bin('GreaterOrEqual');
export const and = bin('And');
export const or = bin('Or');
export const not = un('Not');
export const where = (cond: Tensor, a: Tensor | number, b: Tensor | number, name?: string): Tensor => {
  const ref = typeof a === 'number' ? (b as Tensor) : a;
  return cond.g.apply1('Where', [cond, lift(a, ref), lift(b, ref)], {}, { name });
};
export const square = (x: Tensor): Tensor => mul(x, x);

const gy0 = (c: VjpCtx): Tensor => c.gy[0]!;
const x0 = (c: VjpCtx): Tensor => c.x[0]!;
const y0 = (c: VjpCtx): Tensor => c.y[0]!;
const when = (need: boolean | undefined, f: () => Tensor): Tensor | undefined => (need ? f() : undefined);

const binary = (type: string, vjp: (c: VjpCtx, a: Tensor, b: Tensor, gy: Tensor) => (Tensor | undefined)[]) =>
  registerOp({ type, infer: binaryInfer, vjp: (c) => vjp(c, c.x[0]!, c.x[1]!, gy0(c)) });

binary('Add', (c, _a, _b, gy) => [when(c.needs[0], () => gy), when(c.needs[1], () => gy)]);
binary('Sub', (c, _a, _b, gy) => [when(c.needs[0], () => gy), when(c.needs[1], () => neg(gy))]);
binary('Mul', (c, a, b, gy) => [when(c.needs[0], () => mul(gy, b)), when(c.needs[1], () => mul(gy, a))]);
binary('Div', (c, _a, b, gy) => [
  when(c.needs[0], () => div(gy, b)),
  when(c.needs[1], () => neg(div(mul(gy, y0(c)), b))),
]);
// d(a^b)/da = b·a^(b−1) = b·y/a would break at a = 0, so use the power form.
binary('Pow', (c, a, b, gy) => [
  when(c.needs[0], () => mul(gy, mul(b, pow(a, sub(b, 1))))),
  when(c.needs[1], () => mul(gy, mul(y0(c), log(a)))),
]);
// Ties send the whole gradient to the first input, as PyTorch's maximum/minimum split it evenly; inputs
// are kept away from ties in tests, and ties are measure-zero in training.
const pick = (c: VjpCtx, first: Tensor): (Tensor | undefined)[] => [
  when(c.needs[0], () => where(first, gy0(c), 0)),
  when(c.needs[1], () => where(first, 0, gy0(c))),
];
binary('Max', (c, a, b) => pick(c, greaterOrEqual(a, b)));
binary('Min', (c, a, b) => pick(c, lessOrEqual(a, b)));

const unary = (type: string, vjp?: (c: VjpCtx, x: Tensor, gy: Tensor) => Tensor) =>
  registerOp({
    type,
    infer: unaryFloatInfer,
    ...(vjp ? { vjp: (c: VjpCtx) => [when(c.needs[0], () => vjp(c, x0(c), gy0(c)))] } : {}),
  });

unary('Neg', (_c, _x, gy) => neg(gy));
unary('Exp', (c, _x, gy) => mul(gy, y0(c)));
unary('Log', (_c, x, gy) => div(gy, x));
unary('Sqrt', (c, _x, gy) => div(mul(gy, 0.5), y0(c)));
unary('Sigmoid', (c, _x, gy) => mul(gy, mul(y0(c), sub(1, y0(c)))));
unary('Tanh', (c, _x, gy) => mul(gy, sub(1, square(y0(c)))));
unary('Erf', (_c, x, gy) => mul(gy, mul(exp(neg(square(x))), 2 / Math.sqrt(Math.PI))));
unary('Sin', (_c, x, gy) => mul(gy, cos(x)));
unary('Cos', (_c, x, gy) => neg(mul(gy, sin(x))));
unary('Reciprocal', (c, _x, gy) => neg(mul(gy, square(y0(c)))));
unary('Relu', (_c, x, gy) => where(greater(x, 0), gy, 0));
unary('Abs', (_c, x, gy) => mul(gy, sign(x)));
unary('Sign');
registerOp({
  type: 'Identity',
  infer: (inputs, _a, ctx) => (expectCount(inputs, 1, 1, ctx), [inputs[0]!]),
  vjp: (c) => [when(c.needs[0], () => gy0(c))],
});

for (const type of ['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual']) registerOp({ type, infer: compareInfer });
for (const type of ['And', 'Or']) {
  registerOp({
    type,
    infer: (inputs, attrs, ctx) => {
      if (inputs.some((t) => t.dtype !== 'bool')) ctx.fail('needs bool inputs');
      return compareInfer(inputs, attrs, ctx);
    },
  });
}
registerOp({
  type: 'Not',
  infer: (inputs, _a, ctx) => {
    const x = inputs[0]?.dtype === 'bool' ? inputs[0] : ctx.fail('needs a bool input');
    return [x];
  },
});

registerOp({
  type: 'Where',
  infer: (inputs, _a, ctx) => {
    expectCount(inputs, 3, 3, ctx);
    if (inputs[0]!.dtype !== 'bool') ctx.fail('condition must be bool');
    return [{ dtype: sameDtype(inputs.slice(1), ctx), shape: broadcastAll(inputs, ctx) }];
  },
  vjp: (c) => [
    undefined,
    when(c.needs[1], () => where(c.x[0]!, gy0(c), 0)),
    when(c.needs[2], () => where(c.x[0]!, 0, gy0(c))),
  ],
});
