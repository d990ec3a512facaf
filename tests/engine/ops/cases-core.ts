// The VJP table for elementwise, matmul, reduction and layout ops (indexing ops: cases-indexing.ts).
import * as op from '../../../main/engine/ir/index.ts';
import type { VjpCase } from './gradcheck.ts';

const pos = [0.5, 2] as const;

/** erf by its Maclaurin series: exact to double precision for |x| ≤ 2. */
const erf64 = (x: number): number => {
  let term = x;
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
};

export const coreCases: VjpCase[] = [
  { name: 'Add (broadcast)', inputs: [{ shape: [2, 3] }, { shape: [3] }], build: (a, b) => op.add(a, b) },
  { name: 'Sub (broadcast 1)', inputs: [{ shape: [2, 1] }, { shape: [2, 3] }], build: (a, b) => op.sub(a, b) },
  { name: 'Mul', inputs: [{ shape: [2, 3] }, { shape: [2, 3] }], build: (a, b) => op.mul(a, b) },
  { name: 'Div', inputs: [{ shape: [2, 3] }, { shape: [1, 3], range: pos }], build: (a, b) => op.div(a, b) },
  { name: 'Pow', inputs: [{ shape: [2, 3], range: pos }, { shape: [3], range: [1, 2] }], build: (a, b) => op.pow(a, b) },
  { name: 'Max', inputs: [{ shape: [2, 3] }, { shape: [2, 3] }], build: (a, b) => op.maximum(a, b) },
  { name: 'Min', inputs: [{ shape: [2, 3] }, { shape: [3] }], build: (a, b) => op.minimum(a, b) },
  { name: 'Neg', inputs: [{ shape: [4] }], build: (x) => op.neg(x) },
  { name: 'Exp', inputs: [{ shape: [2, 3] }], build: (x) => op.exp(x) },
  { name: 'Log', inputs: [{ shape: [2, 3], range: pos }], build: (x) => op.log(x) },
  { name: 'Sqrt', inputs: [{ shape: [2, 3], range: pos }], build: (x) => op.sqrt(x) },
  { name: 'Sigmoid', inputs: [{ shape: [2, 3] }], build: (x) => op.sigmoid(x) },
  { name: 'Tanh', inputs: [{ shape: [2, 3] }], build: (x) => op.tanh(x) },
  // ORT's CPU EP has no float64 Erf: difference a float64 series instead.
  { name: 'Erf', inputs: [{ shape: [2, 3] }], build: (x) => op.erf(x), noFloat64: { ref: ([x]) => x!.map(erf64) } },
  { name: 'Sin', inputs: [{ shape: [2, 3] }], build: (x) => op.sin(x) },
  { name: 'Cos', inputs: [{ shape: [2, 3] }], build: (x) => op.cos(x) },
  { name: 'Reciprocal', inputs: [{ shape: [2, 3], range: pos }], build: (x) => op.reciprocal(x) },
  { name: 'Relu', inputs: [{ shape: [2, 3], values: [-0.9, 0.4, -0.3, 0.7, 1.2, -1.1] }], build: (x) => op.relu(x) },
  { name: 'Abs', inputs: [{ shape: [2, 3], values: [-0.9, 0.4, -0.3, 0.7, 1.2, -1.1] }], build: (x) => op.abs(x) },
  {
    name: 'Where',
    inputs: [{ shape: [2, 3], kind: 'bool' }, { shape: [2, 3] }, { shape: [3] }],
    build: (c, a, b) => op.where(c, a, b),
  },
  { name: 'Cast float→float64→float', inputs: [{ shape: [3] }], build: (x) => op.cast(op.mul(op.cast(x, 'float64'), 2), x.dtype) },
  { name: 'MatMul 2-D', inputs: [{ shape: [3, 4] }, { shape: [4, 2] }], build: (a, b) => op.matmul(a, b) },
  { name: 'MatMul batched, broadcast B', inputs: [{ shape: [2, 3, 4] }, { shape: [4, 5] }], build: (a, b) => op.matmul(a, b) },
  { name: 'MatMul 4-D', inputs: [{ shape: [2, 2, 3, 4] }, { shape: [2, 1, 4, 3] }], build: (a, b) => op.matmul(a, b) },
  {
    name: 'Gemm transB, alpha, beta, bias',
    inputs: [{ shape: [3, 4] }, { shape: [5, 4] }, { shape: [5] }],
    build: (a, b, c) => op.gemm(a, b, c, { transB: true, alpha: 0.7, beta: 1.3 }),
  },
  {
    name: 'Gemm transA',
    inputs: [{ shape: [4, 3] }, { shape: [4, 5] }],
    build: (a, b) => op.gemm(a, b, undefined, { transA: true }),
  },
  {
    name: 'Gemm transA transB',
    inputs: [{ shape: [4, 3] }, { shape: [5, 4] }],
    build: (a, b) => op.gemm(a, b, undefined, { transA: true, transB: true }),
  },
  { name: 'ReduceSum axis 1 keepdims', inputs: [{ shape: [2, 3, 4] }], build: (x) => op.reduceSum(x, [1]) },
  { name: 'ReduceSum all', inputs: [{ shape: [2, 3] }], build: (x) => op.reduceSum(x, [], { keepdims: false }) },
  { name: 'ReduceMean last, no keepdims', inputs: [{ shape: [2, 3, 4] }], build: (x) => op.reduceMean(x, [-1], { keepdims: false }) },
  { name: 'ReduceMax axis 0', inputs: [{ shape: [3, 4] }], build: (x) => op.reduceMax(x, [0]) },
  { name: 'Softmax', inputs: [{ shape: [2, 5] }], build: (x) => op.softmax(x, -1) },
  { name: 'Softmax axis 0', inputs: [{ shape: [3, 2] }], build: (x) => op.softmax(x, 0) },
  { name: 'LogSoftmax', inputs: [{ shape: [2, 5] }], build: (x) => op.logSoftmax(x) },
  { name: 'Reshape (-1)', inputs: [{ shape: [2, 6] }], build: (x) => op.reshape(x, [3, -1]) },
  { name: 'Transpose', inputs: [{ shape: [2, 3, 4] }], build: (x) => op.transpose(x, [2, 0, 1]) },
  { name: 'Expand', inputs: [{ shape: [3, 1] }], build: (x) => op.expand(x, [2, 3, 4]) },
  { name: 'Unsqueeze', inputs: [{ shape: [3] }], build: (x) => op.unsqueeze(x, [0, 2]) },
  { name: 'Squeeze', inputs: [{ shape: [1, 3, 1] }], build: (x) => op.squeeze(x, [0, 2]) },
];
