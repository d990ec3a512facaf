import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import * as op from '../../../main/engine/ir/index.ts';
import { GraphBuilder, ShapeError } from '../../../main/engine/ir/index.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';
import { indexingCases as cases } from './cases-indexing.ts';
import { checkVjp } from './gradcheck.ts';


describe('VJP of the indexing ops', () => {
  for (const c of cases) it(c.name, () => checkVjp(c));
});

describe('indexing shape inference', () => {
  const sym = () => {
    const g = new GraphBuilder();
    return { g, x: g.input('x', 'float32', ['seq', 4]) };
  };

  it('spells symbolic slice dims', () => {
    const { x } = sym();
    expect(op.slice(x, { starts: [1], ends: [op.END] }).shape).toEqual(['(seq-1)', 4]);
    expect(op.slice(x, { starts: [0], ends: [-1] }).shape).toEqual(['(seq-1)', 4]);
    expect(op.slice(x, { starts: [2], ends: [-1] }).shape).toEqual(['(seq-3)', 4]);
    expect(op.slice(x, { starts: [-3], ends: [op.END] }).shape).toEqual([3, 4]);
    expect(op.slice(x, { starts: [-3], ends: [-1] }).shape).toEqual([2, 4]);
    expect(op.slice(op.slice(x, { starts: [1], ends: [op.END] }), { starts: [1], ends: [op.END] }).shape).toEqual(['(seq-2)', 4]);
    const [a, b] = op.split(x, [1, '(seq-1)'], 0);
    expect([a!.shape, b!.shape]).toEqual([[1, 4], ['(seq-1)', 4]]);
    expect(op.concat([b!, a!], 0).shape).toEqual(['seq', 4]);
    expect(op.concat([x, x], 0).shape).toEqual(['2*seq', 4]);
    expect(op.concat([b!, b!], 0).shape).toEqual(['2*(seq-1)', 4]);
    expect(op.range(x.g, '(seq-1)').shape).toEqual(['(seq-1)']);
  });

  it('fails clearly where a dim has no spelling', () => {
    const { x } = sym();
    expect(() => op.slice(x, { starts: [0], ends: [3] })).toThrow(ShapeError);
    expect(() => op.slice(x, { starts: [0], ends: [3] })).toThrow(/Slice 'Slice.*symbolic dim 'seq'/);
    expect(() => op.concat([x, op.slice(x, { starts: [-1], ends: [op.END] })], 0)).toThrow(/seq \+ 1.*not expressible/);
    expect(() => op.split(x, [1, 2], 0)).toThrow(/do not add up/);
    expect(() => op.gatherND(x, x.g.input('i', 'int64', [2, 'k']))).toThrow(/static last dim/);
  });

  it('refuses the VJP of a strided slice, naming the node', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [6]);
    g.output(op.reduceSum(op.slice(x, { starts: [0], ends: [6], steps: [2] }, 'strided'), [], { keepdims: false }), 'loss');
    expect(() => gradients(g.build(), { loss: 'loss', wrt: ['x'] })).toThrow(/Slice 'strided'.*step 1/);
  });
});

describe('symbolic Slice/Concat/Split emit and run for two seq lengths', () => {
  it('matches a JS computation at seq 5 and 7, gradients included', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['seq', 3]);
    const next = op.slice(x, { starts: [1], ends: [op.END] }); // (seq-1)
    const prev = op.slice(x, { starts: [0], ends: [-1] }); // (seq-1)
    const diff = op.sub(next, prev);
    const tail = op.slice(x, { starts: [-2], ends: [op.END] }); // 2
    const [head, rest] = op.split(x, [1, '(seq-1)'], 0);
    const rolled = op.concat([rest!, head!], 0); // seq
    const both = op.concat([next, prev], 0); // 2*(seq-1)
    g.output(diff, 'diff');
    g.output(rolled, 'rolled');
    g.output(both, 'both');
    const sumSq = (t: op.Tensor): op.Tensor => op.reduceSum(op.mul(t, t), [], { keepdims: false });
    const loss = op.add(
      op.add(sumSq(diff), sumSq(both)),
      op.add(sumSq(tail), op.reduceSum(op.mul(rolled, x), [], { keepdims: false })),
    );
    g.output(loss, 'loss');
    const { graph, grads } = gradients(g.build(), { loss: 'loss', wrt: ['x'] });
    const session = await Session.create(graph, { threads: 1 });
    try {
      for (const seq of [5, 7]) {
        const data = Float32Array.from({ length: seq * 3 }, (_, k) => Math.sin(k * 1.7) + k / 10);
        const at = (r: number, c: number): number => data[r * 3 + c]!;
        const out = await session.run({ x: { dtype: 'float32', shape: [seq, 3], data } });
        expect(out.diff!.shape).toEqual([seq - 1, 3]);
        expect(out.rolled!.shape).toEqual([seq, 3]);
        expect(out.both!.shape).toEqual([2 * (seq - 1), 3]);
        const wantDiff: number[] = [];
        const wantRolled: number[] = [];
        const wantGrad: number[] = [];
        for (let r = 0; r < seq; r++) {
          for (let c = 0; c < 3; c++) {
            if (r < seq - 1) wantDiff.push(at(r + 1, c) - at(r, c));
            wantRolled.push(at((r + 1) % seq, c));
            let gr = at((r + 1) % seq, c) + at((r - 1 + seq) % seq, c); // d Σ x[r+1]·x[r]
            if (r >= 1) gr += 2 * (at(r, c) - at(r - 1, c));
            if (r < seq - 1) gr -= 2 * (at(r + 1, c) - at(r, c));
            if (r >= seq - 2) gr += 2 * at(r, c);
            gr += (r >= 1 ? 2 * at(r, c) : 0) + (r < seq - 1 ? 2 * at(r, c) : 0); // Σ both²
            wantGrad.push(gr);
          }
        }
        const close = (got: ArrayLike<number>, want: number[]): void => {
          expect(got.length).toBe(want.length);
          want.forEach((w, k) => expect(got[k]!).toBeCloseTo(w, 4));
        };
        close(out.diff!.data as Float32Array, wantDiff);
        close(out.rolled!.data as Float32Array, wantRolled);
        close(out[grads.get('x')!]!.data as Float32Array, wantGrad);
      }
    } finally {
      await session.release();
    }
  });

  it('range follows a symbolic dim at run time', async () => {
    const g = new GraphBuilder();
    g.input('ids', 'int64', ['batch', 'seq']);
    g.output(op.range(g, '(seq-1)'), 'r');
    const session = await Session.create(g.build(), { threads: 1 });
    try {
      const out = await session.run({ ids: { dtype: 'int64', shape: [2, 4], data: new BigInt64Array(8) } });
      expect([...(out.r!.data as BigInt64Array)].map(Number)).toEqual([0, 1, 2]);
    } finally {
      await session.release();
    }
  });
});
