import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import * as op from '../../../main/engine/ir/index.ts';
import { GraphBuilder, ShapeError } from '../../../main/engine/ir/index.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';
import { checkVjp, type VjpCase } from './gradcheck.ts';

const idx = (shape: number[], values: number[]) => ({ shape, kind: 'int64' as const, values });

// Every differentiable indexing op, static shapes; int64 inputs are data with fixed values.
const cases: VjpCase[] = [
  { name: 'Concat axis 0', inputs: [{ shape: [2, 3] }, { shape: [1, 3] }], build: (a, b) => op.concat([a, b], 0) },
  {
    name: 'Concat axis -1, three inputs',
    inputs: [{ shape: [2, 1] }, { shape: [2, 3] }, { shape: [2, 2] }],
    build: (a, b, c) => op.concat([a, b, c], -1),
  },
  { name: 'Concat same input twice', inputs: [{ shape: [3] }], build: (a) => op.concat([a, op.mul(a, a)], 0) },
  { name: 'Slice two axes, negative end', inputs: [{ shape: [4, 5] }], build: (x) => op.slice(x, { starts: [1, 0], ends: [3, -1] }) },
  {
    name: 'Slice negative start to the end',
    inputs: [{ shape: [2, 5, 3] }],
    build: (x) => op.slice(x, { starts: [-2], ends: [op.END], axes: [1] }),
  },
  { name: 'Slice past the end (clamped)', inputs: [{ shape: [3, 4] }], build: (x) => op.slice(x, { starts: [1], ends: [100], axes: [-1] }) },
  { name: 'Split, middle piece unused', inputs: [{ shape: [2, 6] }], build: (x) => {
    const [a, , c] = op.split(x, [1, 3, 2], 1);
    return op.concat([c!, a!], 1);
  } },
  { name: 'Split one piece', inputs: [{ shape: [4, 2] }], build: (x) => op.split(x, [3, 1], 0)[0]! },
  { name: 'Pad constant', inputs: [{ shape: [2, 3] }], build: (x) => op.pad(x, [1, 0, 0, 2], 0.5) },
  { name: 'Gather axis 0, repeated indices', inputs: [{ shape: [5, 3] }, idx([4], [0, 2, 2, 4])], build: (d, i) => op.gather(d, i!, 0) },
  {
    name: 'Gather axis 1, 2-D negative indices',
    inputs: [{ shape: [2, 4, 3] }, idx([2, 2], [3, 0, -1, 3])],
    build: (d, i) => op.gather(d, i!, 1),
  },
  { name: 'Gather scalar index, last axis', inputs: [{ shape: [3, 4] }, idx([], [2])], build: (d, i) => op.gather(d, i!, -1) },
  {
    name: 'GatherElements axis 1',
    inputs: [{ shape: [3, 4] }, idx([3, 2], [0, 3, 1, 1, 3, -4])],
    build: (d, i) => op.gatherElements(d, i!, 1),
  },
  {
    name: 'ScatterElements add axis 0, duplicates',
    inputs: [{ shape: [3, 4] }, idx([2, 4], [0, 2, 2, 1, 0, 2, 1, 1]), { shape: [2, 4] }],
    build: (d, i, u) => op.scatterElementsAdd(d, i!, u!, 0),
  },
  {
    name: 'ScatterND add rows, duplicates',
    inputs: [{ shape: [4, 3] }, idx([3, 1], [1, 3, 1]), { shape: [3, 3] }],
    build: (d, i, u) => op.scatterNDAdd(d, i!, u!),
  },
  {
    name: 'ScatterND add elements',
    inputs: [{ shape: [3, 4] }, idx([2, 2], [0, 1, 2, 3]), { shape: [2] }],
    build: (d, i, u) => op.scatterNDAdd(d, i!, u!),
  },
  { name: 'GatherND', inputs: [{ shape: [3, 4, 2] }, idx([3, 2], [0, 1, 2, 3, 0, 1])], build: (d, i) => op.gatherND(d, i!) },
];

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
