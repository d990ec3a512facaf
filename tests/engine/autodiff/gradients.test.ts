import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import { GraphBuilder, add, exp, mul, reduceSum, sin, tanh } from '../../../main/engine/ir/index.ts';
import { prune } from '../../../main/engine/onnx/prune.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';

describe('autodiff', () => {
  it('handles graphs thousands of nodes deep without recursion (a 48-layer stack of 60 ops each)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [4]);
    const w = g.input('w', 'float32', [4]);
    let h = x;
    for (let layer = 0; layer < 48; layer++) {
      h = g.block(`layers.${layer}`, () => {
        let t = h;
        for (let k = 0; k < 20; k++) t = add(mul(tanh(t), 0.5), mul(w, 0.01));
        return t;
      });
    }
    g.output(reduceSum(h, [], { keepdims: false }), 'loss');
    const graph = g.build();
    expect(graph.nodes.length).toBeGreaterThan(2800);
    for (const recompute of [false, true]) {
      const { graph: full, grads } = gradients(graph, { loss: 'loss', wrt: ['w'], recompute });
      const s = await Session.create(full, { threads: 1 });
      const out = await s.run({
        x: { dtype: 'float32', shape: [4], data: new Float32Array([0.1, -0.2, 0.3, 0.4]) },
        w: { dtype: 'float32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
      });
      const gw = out[grads.get('w')!]!.data as Float32Array;
      expect(gw.every(Number.isFinite)).toBe(true);
      expect(gw.some((v) => v !== 0)).toBe(true);
      await s.release();
    }
  });

  it('gives gradients only for the tensors asked for, and prunes what the outputs do not need', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const frozen = g.initializer('frozen', 'float32', [3], { kind: 'inline', data: new Float32Array([1, 2, 3]) });
    const trainable = g.input('trainable', 'float32', [3]);
    const unused = exp(sin(x)); // never reaches the loss
    g.output(reduceSum(mul(mul(x, frozen), trainable), [], { keepdims: false }), 'loss');
    const { graph, grads } = gradients(g.build(), { loss: 'loss', wrt: ['trainable'] });
    expect([...grads.keys()]).toEqual(['trainable']);
    expect(graph.outputs.map((id) => graph.value(id).name)).toEqual(['loss', 'trainable.grad']);
    const pruned = prune(graph);
    expect(pruned.nodes.some((n) => n.outputs.includes(unused.id))).toBe(false);
    expect(pruned.nodes.length).toBeLessThan(graph.nodes.length);
    // x·frozen does not depend on `trainable`: its VJP is never built.
    expect(graph.nodes.some((n) => n.name.startsWith('Mul.grad'))).toBe(false);
    expect(graph.nodes.some((n) => n.name.startsWith('Mul_1.grad'))).toBe(true);
  });

  it('refuses a non-scalar loss and integer wrt tensors, naming them', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    g.input('ids', 'int64', [3]);
    g.output(mul(x, 2), 'y');
    const graph = g.build();
    expect(() => gradients(graph, { loss: 'y', wrt: ['x'] })).toThrow(/loss 'y' must be a scalar, got \[3\]/);
    const h = new GraphBuilder();
    h.input('ids', 'int64', [3]);
    h.output(reduceSum(h.input('z', 'float32', [3]), [], { keepdims: false }), 'loss');
    expect(() => gradients(h.build(), { loss: 'loss', wrt: ['ids'] })).toThrow(/'ids' of dtype int64/);
  });
});
