import { describe, expect, it } from 'vitest';
import * as op from '../../../main/engine/ir/index.ts';
import { GraphBuilder, type Graph } from '../../../main/engine/ir/index.ts';
import { blockDiagonalCausalMask, causalMask, maskValue } from '../../../main/engine/nn/masks.ts';
import { Session, type HostTensor } from '../../../main/engine/onnx/runtime.ts';

const run = async (graph: Graph, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> => {
  const session = await Session.create(graph, { threads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
};

const ids = (shape: number[], values: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(values, BigInt) });

describe('causalMask', () => {
  it('is 0 on and below the diagonal and -1e9 above (static seq, float32)', async () => {
    const g = new GraphBuilder();
    g.output(causalMask(g, 4), 'mask');
    const out = await run(g.build(), {});
    expect(out.mask!.shape).toEqual([4, 4]);
    const want = Array.from({ length: 16 }, (_, k) => (k % 4 <= Math.floor(k / 4) ? 0 : Math.fround(-1e9)));
    expect([...(out.mask!.data as Float32Array)]).toEqual(want);
  });

  it('follows a symbolic seq at run time and keeps softmax finite', async () => {
    const g = new GraphBuilder();
    const scores = g.input('scores', 'float32', ['batch', 'seq', 'seq']);
    const mask = causalMask(g, 'seq');
    g.output(mask, 'mask');
    g.output(op.softmax(op.add(scores, mask), -1), 'probs');
    for (const seq of [3, 6]) {
      const out = await run(g.build(), { scores: { dtype: 'float32', shape: [2, seq, seq], data: new Float32Array(2 * seq * seq) } });
      expect(out.mask!.shape).toEqual([seq, seq]);
      const probs = out.probs!.data as Float32Array;
      for (let b = 0; b < 2; b++) {
        for (let q = 0; q < seq; q++) {
          for (let k = 0; k < seq; k++) expect(probs[(b * seq + q) * seq + k]!).toBeCloseTo(k <= q ? 1 / (q + 1) : 0, 6);
        }
      }
    }
  });

  it('uses -65504 in float16 and -1e9 in float64', async () => {
    const g = new GraphBuilder();
    g.output(causalMask(g, 2, 'float16'), 'half');
    g.output(causalMask(g, 2, 'float64'), 'double');
    const out = await run(g.build(), {});
    expect(maskValue('float16')).toBe(-65504);
    expect([...(out.half!.data as Uint16Array)]).toEqual([0, 0xfbff, 0, 0]); // 0xfbff = -65504
    expect([...(out.double!.data as Float64Array)]).toEqual([0, -1e9, 0, 0]);
  });
});

describe('blockDiagonalCausalMask', () => {
  it('lets a query see earlier keys of its own segment only', async () => {
    const g = new GraphBuilder();
    const seg = g.input('segments', 'int64', ['batch', 'seq']);
    const mask = blockDiagonalCausalMask(seg);
    expect(mask.shape).toEqual(['batch', 1, 'seq', 'seq']);
    g.output(mask, 'mask');
    const segments = [
      [0, 0, 0, 1, 1],
      [3, 3, 7, 7, 7],
      [5, 5, 5, 5, 5],
    ];
    const out = await run(g.build(), { segments: ids([3, 5], segments.flat()) });
    expect(out.mask!.shape).toEqual([3, 1, 5, 5]);
    const got = out.mask!.data as Float32Array;
    const neg = Math.fround(maskValue('float32'));
    segments.forEach((s, b) => {
      for (let q = 0; q < 5; q++) {
        for (let k = 0; k < 5; k++) {
          expect(got[(b * 5 + q) * 5 + k], `batch ${b} q ${q} k ${k}`).toBe(s[k] === s[q] && k <= q ? 0 : neg);
        }
      }
    });
  });

  it('every row keeps its diagonal, so no row is fully masked (float16)', async () => {
    const g = new GraphBuilder();
    g.output(blockDiagonalCausalMask(g.input('segments', 'int64', [1, 4]), 'float16'), 'mask');
    const out = await run(g.build(), { segments: ids([1, 4], [1, 2, 3, 4]) });
    expect([...(out.mask!.data as Uint16Array)]).toEqual(Array.from({ length: 16 }, (_, k) => (k % 5 === 0 ? 0 : 0xfbff)));
  });

  it('rejects segment ids that are not int64 [batch, seq]', () => {
    const g = new GraphBuilder();
    expect(() => blockDiagonalCausalMask(g.input('s', 'float32', [2, 3]))).toThrow(/int64 segment ids/);
  });
});
