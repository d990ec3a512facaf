import type { Tensor } from '../ir/graph.ts';
import { mul, sigmoid } from '../ir/ops/index.ts';
import { linear } from './linear.ts';

export const silu = (x: Tensor): Tensor => mul(x, sigmoid(x));

export interface SwiGluWeights {
  readonly gate: Tensor; // (I, C)
  readonly up: Tensor; // (I, C)
  readonly down: Tensor; // (C, I)
}

/** down(silu(gate(x)) ⊙ up(x)): the Llama MLP. */
export const swiGlu = (x: Tensor, w: SwiGluWeights): Tensor => {
  const gate = silu(linear(x, w.gate)); // (B, T, I)
  const up = linear(x, w.up); // (B, T, I)
  return linear(mul(gate, up), w.down); // (B, T, C)
};
