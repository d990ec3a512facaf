import { describe, expect, it } from 'vitest';
import { GraphBuilder, ShapeError, add, dumpGraph, gemm, matmul, reshape, dimEq, mulDims, divDim, tryBroadcast } from '../../../main/engine/ir/index.ts';

describe('graph building', () => {
  it('a shape error names the op, the node and both shapes', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', ['batch', 3]);
    const b = g.input('b', 'float32', [4, 2]);
    let err: unknown;
    try {
      g.scope('model.layers.3.self_attn', () => matmul(a, b, 'q_proj'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    const msg = (err as Error).message;
    expect(msg).toContain('MatMul');
    expect(msg).toContain('model.layers.3.self_attn.q_proj');
    expect(msg).toContain('float32[batch, 3]');
    expect(msg).toContain('float32[4, 2]');
  });

  it('reports broadcast, Gemm and reshape mismatches with their shapes', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4]);
    expect(() => add(a, b)).toThrow(/Add 'Add': shapes do not broadcast: float32\[2, 3\] and float32\[4\]/);
    expect(() => gemm(a, g.input('w', 'float32', [5, 4]), undefined, { transB: true })).toThrow(/float32\[2, 3\] × float32\[5, 4\]ᵀ/);
    expect(() => reshape(a, [4, -1])).toThrow(/cannot reshape float32\[2, 3\] to \[4, -1\]/);
    expect(() => add(a, g.input('i', 'int64', [2, 3]))).toThrow(/mixed dtypes/);
  });

  it('infers symbolic shapes through reshape and broadcasting', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 'seq', 8]);
    const flat = reshape(x, [-1, 8]);
    expect(flat.shape).toEqual(['batch*seq', 8]);
    expect(reshape(flat, ['batch', 'seq', 2, 4]).shape).toEqual(['batch', 'seq', 2, 4]);
    expect(dimEq('seq*batch', 'batch*seq')).toBe(true);
    expect(mulDims('2*seq', 3)).toBe('6*seq');
    expect(divDim('batch*seq', 'seq')).toBe('batch');
    expect(divDim('batch', 'seq')).toBeUndefined();
    expect(tryBroadcast(['batch', 1, 8], ['seq', 1])).toEqual(['batch', 'seq', 8]);
  });

  it('names nodes by scope, keeps names unique, and dumps a readable listing', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 4]);
    const w = g.initializer('model.layers.0.mlp.up_proj.weight', 'float32', [4, 4], { kind: 'inline', data: new Float32Array(16) });
    const y = g.block('model.layers.0', () => g.scope('mlp', () => add(matmul(x, w, 'up_proj'), matmul(x, w, 'up_proj'))));
    g.output(y, 'y');
    const graph = g.build();
    const names = graph.nodes.map((n) => n.name);
    expect(names).toContain('model.layers.0.mlp.up_proj');
    expect(names).toContain('model.layers.0.mlp.up_proj_1');
    expect(graph.nodes.every((n) => n.op === 'Identity' || n.block === 'model.layers.0')).toBe(true);
    const text = dumpGraph(graph);
    expect(text).toContain('input  %x: float32[batch, 4]');
    expect(text).toContain('%model.layers.0.mlp.up_proj = MatMul(%x, %model.layers.0.mlp.up_proj.weight)  # float32[batch, 4]  [model.layers.0]');
    expect(text).toContain('output %y: float32[batch, 4]');
  });
});
