// This machine's speeds as a training step sees them, measured once per process and thread count through the real
// runtime: a Gemm (FLOP/s), elementwise passes over a large tensor (bytes/s), a chain of tiny nodes (per-node dispatch cost) and the
// JS optimizer (seconds per parameter). About half a second in all; estimate.ts turns them into a step time.
import { availableParallelism } from 'node:os';
import { GraphBuilder, add, expand, gemm, reduceSum } from '../engine/ir/index.ts';
import { Session, type HostTensor } from '../engine/onnx/runtime.ts';
import { createOptimizer, type OptimizerConfig } from '../engine/optim/index.ts';
import type { MachineThroughput } from './estimate.ts';

/** Gemm rows × inner × columns: the size of a SmolLM2-scale linear layer over a micro-batch. */
const GEMM = { m: 1024, k: 1024, n: 1024 } as const;
const ELEMENTWISE_ELEMENTS = 1 << 23;
const ELEMENTWISE_PASSES = 6;
const CHAIN_NODES = 200;
/** Small enough to stay in cache, large enough that ORT splits each Add over its threads as a step's ops are. */
const CHAIN_ELEMENTS = 1 << 14;
const OPTIMIZER_PARAMS = 1 << 20;
/** Each probe repeats until this much wall time has passed (after one warm-up run, and at least 5 runs). */
const PROBE_SECONDS = 0.12;

const cache = new Map<string, Promise<MachineThroughput>>();

const float32 = (shape: readonly number[], fill: number): HostTensor => ({
  dtype: 'float32',
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill),
});

/**
 * The median of repeated runs (after a warm-up). Not the fastest: a training step lasts seconds and sees the machine's
 * average load (other processes), which the median tracks and the fastest run does not.
 */
const medianRun = async (run: () => Promise<unknown> | unknown): Promise<number> => {
  await run();
  const times: number[] = [];
  const until = performance.now() + PROBE_SECONDS * 1000;
  while (times.length < 5 || performance.now() < until) {
    const t = performance.now();
    await run();
    times.push((performance.now() - t) / 1000);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
};

const timeGraph = async (build: (g: GraphBuilder) => void, feeds: Readonly<Record<string, HostTensor>>, threads: number): Promise<number> => {
  const g = new GraphBuilder();
  build(g);
  const session = await Session.create(g.build(), { threads, provider: 'cpu' });
  try {
    return await medianRun(() => session.run(feeds));
  } finally {
    await session.release();
  }
};

const measure = async (threads: number, optimizer: OptimizerConfig['kind']): Promise<MachineThroughput> => {
  const { m, k, n } = GEMM;
  const gemmSeconds = await timeGraph(
    (g) => g.output(gemm(g.input('x', 'float32', [m, k]), g.input('w', 'float32', [n, k]), undefined, { transB: true }), 'y'), // (m, n)
    { x: float32([m, k], 0.5), w: float32([n, k], 0.25) },
    threads,
  );
  // Elementwise passes over a tensor that lives in ORT's arena, as a step's activations do (fed or fetched tensors
  // would time the copies across the JS boundary instead): one Expand writes it, each Add reads and writes it.
  const addSeconds = await timeGraph(
    (g) => {
      let x = expand(g.input('x', 'float32', [1]), [ELEMENTWISE_ELEMENTS]); // (E,)
      const one = g.input('one', 'float32', [1]);
      for (let i = 0; i < ELEMENTWISE_PASSES; i++) x = add(x, one);
      g.output(reduceSum(x, [0], { keepdims: false }), 'y');
    },
    { x: float32([1], 0), one: float32([1], 1) },
    threads,
  );
  const chainSeconds = await timeGraph(
    (g) => {
      let x = g.input('x', 'float32', [CHAIN_ELEMENTS]);
      const one = g.input('one', 'float32', [CHAIN_ELEMENTS]);
      for (let i = 0; i < CHAIN_NODES; i++) x = add(x, one);
      g.output(x, 'y');
    },
    { x: float32([CHAIN_ELEMENTS], 0), one: float32([CHAIN_ELEMENTS], 1) },
    threads,
  );
  const param = { name: 'probe', data: new Float32Array(OPTIMIZER_PARAMS).fill(0.1) };
  const grads = new Map([['probe', new Float32Array(OPTIMIZER_PARAMS).fill(0.01)]]);
  const opt = createOptimizer(optimizer === 'sgd' ? { kind: 'sgd', momentum: 0.9 } : { kind: 'adamw' }, [{ name: 'all', params: [param] }]);
  const optimizerSeconds = await medianRun(() => opt.step(grads, 1e-4));
  return {
    threads,
    matmulFlopsPerSecond: (2 * m * k * n) / gemmSeconds,
    // Expand writes, each Add reads and writes, the ReduceSum reads.
    memoryBytesPerSecond: (4 * ELEMENTWISE_ELEMENTS * (2 + 2 * ELEMENTWISE_PASSES)) / addSeconds,
    secondsPerNode: chainSeconds / CHAIN_NODES,
    optimizerSecondsPerParam: optimizerSeconds / OPTIMIZER_PARAMS,
  };
};

export interface ProbeOptions {
  /** Intra-op threads; default all cores. */
  readonly threads?: number;
  readonly optimizer?: OptimizerConfig['kind'];
}

/** Measures this machine's throughput now (about half a second), uncached: benches that track the load call it. */
export const measureThroughput = (o: ProbeOptions = {}): Promise<MachineThroughput> => measure(o.threads ?? availableParallelism(), o.optimizer ?? 'adamw');

/** This machine's throughput with `threads` intra-op threads (default: all cores), measured once per process. */
export const probeThroughput = (o: ProbeOptions = {}): Promise<MachineThroughput> => {
  const threads = o.threads ?? availableParallelism();
  const optimizer = o.optimizer ?? 'adamw';
  const key = `${threads}:${optimizer}`;
  let hit = cache.get(key);
  if (!hit) {
    hit = measure(threads, optimizer);
    cache.set(key, hit);
    hit.catch(() => cache.delete(key));
  }
  return hit;
};
