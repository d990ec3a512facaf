// torch's `.detach()`: the identity in the forward pass, a constant to the autodiff. The op has no VJP, so no
// gradient flows back through it (DoRA's weight norm is detached this way, as PEFT does).
import type { Tensor } from '../graph.ts';
import { expectCount } from './helpers.ts';
import { registerOp } from './registry.ts';

export const stopGradient = (x: Tensor, name?: string): Tensor => x.g.apply1('StopGradient', [x], {}, { name });

registerOp({
  type: 'StopGradient',
  onnxType: 'Identity',
  infer: (inputs, _attrs, ctx) => {
    expectCount(inputs, 1, 1, ctx);
    return [inputs[0]!];
  },
});
