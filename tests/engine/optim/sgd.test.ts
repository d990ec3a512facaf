import { describe, expect, it } from 'vitest';
import { SGD, type Param, type SgdOptions } from '../../../main/engine/optim/index.ts';
import { catchOptimizerError, expectClose, seededValues } from './helpers.ts';

const param = (name: string, values: ArrayLike<number>): Param => ({ name, data: Float32Array.from(values) });

function runTwoSteps(options: SgdOptions): number[] {
  const w = param('w', [1]);
  const sgd = new SGD([{ name: 'all', params: [w] }], options);
  const trajectory: number[] = [];
  for (let step = 0; step < 2; step++) {
    sgd.step(new Map([['w', Float32Array.from([0.5])]]), 0.1);
    trajectory.push(w.data[0] as number);
  }
  return trajectory;
}

/** torch.optim.SGD's single-tensor loop in float64; lrs[s] is the lr of step s. */
function referenceSgd(
  initial: Float32Array,
  grads: readonly Float32Array[],
  lrs: readonly number[],
  { momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 }: SgdOptions,
): number[] {
  const p = Array.from(initial);
  let buf: number[] | undefined;
  grads.forEach((grad, s) => {
    const d = Array.from(grad, (g, i) => g + weightDecay * (p[i] as number));
    let direction = d;
    if (momentum !== 0) {
      const prev = buf;
      const current = prev === undefined ? d.slice() : prev.map((b, i) => momentum * b + (1 - dampening) * (d[i] as number));
      buf = current;
      direction = nesterov ? d.map((x, i) => x + momentum * (current[i] as number)) : current;
    }
    direction.forEach((x, i) => (p[i] = (p[i] as number) - (lrs[s] as number) * x));
  });
  return p;
}

describe('SGD', () => {
  it('follows heavy-ball momentum, starting the buffer at the gradient', () => {
    expectClose(runTwoSteps({ momentum: 0.9 }), [0.95, 0.855], 1e-7);
  });

  it('follows nesterov momentum', () => {
    expectClose(runTwoSteps({ momentum: 0.9, nesterov: true }), [0.905, 0.7695], 1e-7);
  });

  it('adds weight decay to the gradient and dampens after the first step', () => {
    expectClose(runTwoSteps({ momentum: 0.9, dampening: 0.5, weightDecay: 0.1 }), [0.94, 0.8563], 1e-7);
  });

  it('is plain gradient descent without momentum and keeps no state tensors', () => {
    const w = param('w', [1, -2]);
    const sgd = new SGD([{ name: 'all', params: [w] }], { weightDecay: 0.5 });
    sgd.step(new Map([['w', Float32Array.from([0.25, 1])]]), 0.2);
    expectClose(w.data, [1 - 0.2 * (0.25 + 0.5), -2 - 0.2 * (1 - 1)], 1e-7);
    expect(sgd.stateDict().tensors).toEqual({});
    expect(sgd.stateDict().paramSteps).toEqual({ w: 1 });
  });

  it.each<SgdOptions>([
    { momentum: 0.9, weightDecay: 0.01 },
    { momentum: 0.8, dampening: 0.1 },
    { momentum: 0.9, nesterov: true, weightDecay: 0.02 },
  ])('matches a float64 re-implementation of torch over 5 steps with per-group lr (%o)', (options) => {
    const initialA = seededValues(1, 9);
    const initialB = seededValues(2, 4);
    const a = param('a', initialA);
    const b = param('b', initialB);
    const sgd = new SGD([
      { name: 'scheduled', params: [a] },
      { name: 'fixed', params: [b], lr: 0.05, lrScale: 2, weightDecay: 0 },
    ], options);
    const gradsA = [0, 1, 2, 3, 4].map((s) => seededValues(10 + s, 9));
    const gradsB = [0, 1, 2, 3, 4].map((s) => seededValues(20 + s, 4));
    const lrs = [0.01, 0.02, 0.03, 0.02, 0.01];
    lrs.forEach((lr, s) => sgd.step(new Map([['a', gradsA[s] as Float32Array], ['b', gradsB[s] as Float32Array]]), lr));

    expectClose(a.data, referenceSgd(initialA, gradsA, lrs, options), 1e-6);
    expectClose(b.data, referenceSgd(initialB, gradsB, lrs.map(() => 0.1), { ...options, weightDecay: 0 }), 1e-6);
  });

  it('rejects nesterov without momentum or with dampening, and wrong-length gradients', () => {
    const w = param('w', [1, 2]);
    expect(() => new SGD([{ name: 'g', params: [w] }], { nesterov: true })).toThrow(/nesterov/);
    expect(() => new SGD([{ name: 'g', params: [w] }], { momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow();
    expect(() => new SGD([{ name: 'g', params: [w] }], { momentum: -0.1 })).toThrow(/momentum/);
    const sgd = new SGD([{ name: 'g', params: [w] }], { momentum: 0.9 });
    const error = catchOptimizerError(() => sgd.step(new Map([['w', new Float32Array(3)]]), 0.1));
    expect(error.tensor).toBe('w');
    expect(Array.from(w.data)).toEqual([1, 2]);
  });
});
