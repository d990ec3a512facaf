import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import * as op from '../../../main/engine/ir/index.ts';
import { GraphBuilder, type Dim, type Graph } from '../../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../../main/engine/onnx/runtime.ts';

const scalar64 = (v: number | bigint): HostTensor => ({ dtype: 'int64', shape: [], data: new BigInt64Array([BigInt(v)]) });

interface MaskGraph {
  graph: Graph;
  salt: number;
}

/** A graph whose output 'mask' is DropoutMask over x [rows, cols] (seed and step are int64 scalar inputs). */
const maskGraph = (p: number, shape: Dim[] = [100, 100], o: { salt?: number; dtype?: 'float32' | 'float64' | 'float16' } = {}): MaskGraph => {
  const g = new GraphBuilder();
  const x = g.input('x', o.dtype ?? 'float32', shape);
  const seed = g.input('rng.seed', 'int64', []);
  const step = g.input('rng.step', 'int64', []);
  const mask = op.dropoutMask(x, p, { seed, step, ...(o.salt === undefined ? {} : { salt: o.salt }) });
  g.output(mask, 'mask');
  const node = g.build().nodes.find((n) => n.op === 'DropoutMask')!;
  return { graph: g.build(), salt: Number(node.attrs.salt) };
};

const runMask = async (graph: Graph, seed: number | bigint, step: number | bigint, shape = [100, 100], dtype: 'float32' | 'float64' = 'float32') => {
  const session = await Session.create(graph, { threads: 1 });
  try {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
    const out = await session.run({ x: { dtype, shape, data }, 'rng.seed': scalar64(seed), 'rng.step': scalar64(step) });
    expect(out.mask!.shape).toEqual(shape);
    return out.mask!.data as Float32Array;
  } finally {
    await session.release();
  }
};

const differing = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
};

describe('deterministic dropout', () => {
  it('ORT computes the JS reference mask bit for bit', async () => {
    for (const [p, seed, step] of [[0.1, 1234, 0], [0.5, -7, 99], [0.3, 2n ** 62n + 5n, 123456789]] as const) {
      const { graph, salt } = maskGraph(p);
      const got = await runMask(graph, seed, step);
      const want = op.dropoutMaskRef(10_000, { p, salt, seed, step });
      expect(differing(got, want), `p=${p} seed=${seed} step=${step}`).toBe(0);
    }
  });

  it('keeps about 1 − p of 10k elements, all scaled by 1/(1 − p)', async () => {
    for (const p of [0.1, 0.25, 0.5, 0.9]) {
      const mask = await runMask(maskGraph(p).graph, 42, 7);
      const kept = mask.filter((v) => v !== 0);
      expect(Math.abs(kept.length / mask.length - (1 - p)), `p=${p}`).toBeLessThan(0.02);
      expect(new Set(kept)).toEqual(new Set([Math.fround(1 / (1 - p))]));
    }
  });

  it('neighbouring elements and rows are not correlated', () => {
    const keep = op.dropoutKeepRef(100_000, { p: 0.5, salt: 3, seed: 1, step: 0 });
    let same = 0;
    for (let i = 1; i < keep.length; i++) if (keep[i] === keep[i - 1]) same++;
    expect(Math.abs(same / (keep.length - 1) - 0.5)).toBeLessThan(0.01);
    let sameRow = 0;
    for (let i = 100; i < keep.length; i++) if (keep[i] === keep[i - 100]) sameRow++;
    expect(Math.abs(sameRow / (keep.length - 100) - 0.5)).toBeLessThan(0.01);
  });

  it('the same (seed, step) gives the same mask in a fresh session and a rebuilt graph', async () => {
    const a = await runMask(maskGraph(0.3).graph, 5, 11);
    const b = await runMask(maskGraph(0.3).graph, 5, 11);
    expect(differing(a, b)).toBe(0);
  });

  it('a different step, seed or salt gives a different mask', async () => {
    const { graph, salt } = maskGraph(0.5);
    const base = await runMask(graph, 5, 11);
    for (const other of [await runMask(graph, 5, 12), await runMask(graph, 6, 11), await runMask(maskGraph(0.5, [100, 100], { salt: salt + 1 }).graph, 5, 11)]) {
      // Independent masks at p = 0.5 differ in about half of the elements.
      expect(differing(base, other) / base.length).toBeGreaterThan(0.4);
    }
  });

  it('derives distinct salts for distinct sites, fixed by the site name', () => {
    const build = () => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [4]);
      const rng = { seed: g.input('rng.seed', 'int64', []), step: g.input('rng.step', 'int64', []) };
      const a = g.scope('layers.0', () => op.dropout(x, 0.1, rng));
      const b = g.scope('layers.1', () => op.dropout(a, 0.1, rng));
      op.dropout(b, 0.1, rng);
      op.dropout(b, 0.1, rng); // same input twice: still a distinct site
      return g.build().nodes.filter((n) => n.op === 'DropoutMask').map((n) => n.attrs.salt);
    };
    const salts = build();
    expect(new Set(salts).size).toBe(4);
    expect(build()).toEqual(salts);
    expect(op.dropoutSalt('x/dropout.mask')).toBe(salts[0]);
  });

  it('the gradient of Σ dropout(x) w.r.t. x is the mask', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [8, 16]);
    const rng = { seed: g.input('rng.seed', 'int64', []), step: g.input('rng.step', 'int64', []) };
    const y = op.dropout(x, 0.4, rng);
    g.output(y, 'y');
    g.output(op.reduceSum(y, [], { keepdims: false }), 'loss');
    const { graph, grads } = gradients(g.build(), { loss: 'loss', wrt: ['x'] });
    const salt = Number(graph.nodes.find((n) => n.op === 'DropoutMask')!.attrs.salt);
    const session = await Session.create(graph, { threads: 1 });
    try {
      const data = Float32Array.from({ length: 128 }, (_, i) => i / 10 - 3);
      const out = await session.run({ x: { dtype: 'float32', shape: [8, 16], data }, 'rng.seed': scalar64(9), 'rng.step': scalar64(3) });
      const mask = op.dropoutMaskRef(128, { p: 0.4, salt, seed: 9, step: 3 });
      expect(differing(out[grads.get('x')!]!.data as Float32Array, mask)).toBe(0);
      expect([...(out.y!.data as Float32Array)]).toEqual([...data].map((v, i) => Math.fround(v * mask[i]!)));
    } finally {
      await session.release();
    }
  });

  it('a recomputed block (gradient checkpointing) draws the same mask', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [4, 8]);
    const rng = { seed: g.input('rng.seed', 'int64', []), step: g.input('rng.step', 'int64', []) };
    const y = g.block('layers.0', () => op.dropout(op.mul(x, x), 0.5, rng));
    g.output(op.reduceSum(y, [], { keepdims: false }), 'loss');
    const { graph, grads } = gradients(g.build(), { loss: 'loss', wrt: ['x'], recompute: true });
    const masks = graph.nodes.filter((n) => n.op === 'DropoutMask');
    expect(masks.map((n) => n.name)).toEqual(['layers.0.dropout.mask', 'layers.0.recompute.dropout.mask']);
    const session = await Session.create(graph, { threads: 1 });
    try {
      const data = Float32Array.from({ length: 32 }, (_, i) => i / 8 - 2);
      const out = await session.run({ x: { dtype: 'float32', shape: [4, 8], data }, 'rng.seed': scalar64(4), 'rng.step': scalar64(8) });
      const mask = op.dropoutMaskRef(32, { p: 0.5, salt: Number(masks[0]!.attrs.salt), seed: 4, step: 8 });
      expect([...(out[grads.get('x')!]!.data as Float32Array)]).toEqual([...data].map((v, i) => Math.fround(2 * v * mask[i]!)));
    } finally {
      await session.release();
    }
  });

  it('p = 0 keeps everything', async () => {
    const mask = await runMask(maskGraph(0).graph, 1, 2);
    expect(mask.every((v) => v === 1)).toBe(true);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    expect(op.dropout(x, 0, { seed: g.input('s', 'int64', []), step: g.input('t', 'int64', []) })).toBe(x);
  });

  it('works for float64, float16 and symbolic shapes', async () => {
    const { graph, salt } = maskGraph(0.2, ['batch', 'seq'], { dtype: 'float64' });
    const want = op.dropoutKeepRef(6 * 7, { p: 0.2, salt, seed: 1, step: 1 });
    const got = await runMask(graph, 1, 1, [6, 7], 'float64');
    expect([...got]).toEqual([...want].map((k) => k / 0.8));
    const half = maskGraph(0.5, [2, 3], { dtype: 'float16' });
    const s = await Session.create(half.graph, { threads: 1 });
    try {
      const out = await s.run({ x: { dtype: 'float16', shape: [2, 3], data: new Uint16Array(6) }, 'rng.seed': scalar64(1), 'rng.step': scalar64(1) });
      const keep = op.dropoutKeepRef(6, { p: 0.5, salt: half.salt, seed: 1, step: 1 });
      expect([...(out.mask!.data as Uint16Array)]).toEqual([...keep].map((k) => (k ? 0x4000 : 0))); // 2.0 in fp16
    } finally {
      await s.release();
    }
  });

  it('rejects bad p and non-scalar seeds', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const seed = g.input('s', 'int64', []);
    expect(() => op.dropoutMask(x, 1, { seed, step: seed })).toThrow(/p must be in \[0, 1\)/);
    expect(() => op.dropoutMask(x, 0.5, { seed: g.input('v', 'int64', [2]), step: seed })).toThrow(/seed must be an int64 scalar/);
  });
});
