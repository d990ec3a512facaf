import type { Tensor } from '../ir/graph.ts';
import { logSoftmax, mul, neg, reduceMean, reduceSum } from '../ir/ops/index.ts';

/** Mean cross-entropy over rows against one-hot (or soft) targets: logits (N, V), targets (N, V). */
export const softCrossEntropy = (logits: Tensor, targets: Tensor): Tensor => {
  const logp = logSoftmax(logits, -1); // (N, V)
  const perRow = neg(reduceSum(mul(logp, targets), [-1], { keepdims: false })); // (N,)
  return reduceMean(perRow, [0], { keepdims: false }); // ()
};
