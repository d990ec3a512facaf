import type { Tensor } from '../ir/graph.ts';
import {
  END,
  cast,
  div,
  equal,
  gatherElements,
  logSoftmax,
  maximum,
  mul,
  neg,
  not,
  reduceMean,
  reduceSum,
  slice,
  squeeze,
  unsqueeze,
  where,
} from '../ir/ops/index.ts';

/** Mean cross-entropy over rows against one-hot (or soft) targets: logits (N, V), targets (N, V). */
export const softCrossEntropy = (logits: Tensor, targets: Tensor): Tensor => {
  const logp = logSoftmax(logits, -1); // (N, V)
  const perRow = neg(reduceSum(mul(logp, targets), [-1], { keepdims: false })); // (N,)
  return reduceMean(perRow, [0], { keepdims: false }); // ()
};

/**
 * Causal LM loss as transformers computes it: logits (B, T, V) predict labels (B, T) shifted by one; labels of
 * −100 carry no loss; the mean runs over the positions that do.
 */
export const causalLmLoss = (logits: Tensor, labels: Tensor): Tensor => {
  const g = logits.g;
  const pred = slice(logits, { starts: [0], ends: [-1], axes: [1] }); // (B, T−1, V)
  const target = slice(labels, { starts: [1], ends: [END], axes: [1] }); // (B, T−1)
  const valid = not(equal(target, g.constant(new BigInt64Array([-100n]), 'int64'))); // (B, T−1)
  const safe = where(valid, target, g.constant(new BigInt64Array([0n]), 'int64')); // (B, T−1)
  const logp = logSoftmax(pred, -1); // (B, T−1, V)
  const picked = squeeze(gatherElements(logp, unsqueeze(safe, [-1]), -1), [-1]); // (B, T−1)
  const weights = cast(valid, logits.dtype); // (B, T−1)
  const total = reduceSum(mul(picked, weights), [], { keepdims: false });
  const count = maximum(reduceSum(weights, [], { keepdims: false }), 1);
  return neg(div(total, count));
};
