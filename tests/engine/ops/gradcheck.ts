// Checks an op's VJP the way llm.c checks gradients: per tensor, max|g − ĝ| ≤ rtol·max|ĝ| + atol.
//  - float64 analytic gradients (our emitted backward graph, run in ORT) vs central finite differences;
//  - float32 analytic gradients vs the float64 ones;
//  - ops without a float64 CPU kernel: float32 gradients vs finite differences of a float64 JS reference.
import { expect } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import { GraphBuilder, mul, reduceSum, type Tensor } from '../../../main/engine/ir/index.ts';
import { Session, type HostTensor } from '../../../main/engine/onnx/runtime.ts';
import { uniform } from '../../helpers/random.ts';

export interface InputSpec {
  readonly shape: readonly number[];
  /** 'float' inputs are differentiated (unless grad is false); integer/bool inputs are data. */
  readonly kind?: 'float' | 'int64' | 'bool';
  readonly range?: readonly [number, number];
  readonly values?: readonly number[];
  readonly grad?: boolean;
}

export interface VjpCase {
  readonly name: string;
  readonly inputs: readonly InputSpec[];
  readonly build: (...xs: Tensor[]) => Tensor;
  /** For ops ORT's CPU EP lacks in float64: why, and a float64 JS forward to difference instead. */
  readonly noFloat64?: { readonly ref: (xs: readonly Float64Array[]) => Float64Array };
  readonly rtol32?: number;
}

const FD_STEP = 1e-6;
const RTOL64 = 1e-6;
const RTOL32 = 1e-4;

type Float = 'float64' | 'float32';

const inputData = (spec: InputSpec, index: number): Float64Array => {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  if (spec.values) return Float64Array.from(spec.values);
  const [lo, hi] = spec.range ?? (spec.kind === 'bool' ? [0, 2] : [-1, 1]);
  const raw = uniform(n, lo, hi, 1000 + index * 7919);
  return spec.kind === 'int64' || spec.kind === 'bool' ? raw.map(Math.floor) : raw;
};

const host = (spec: InputSpec, data: Float64Array, dtype: Float): HostTensor => {
  const shape = [...spec.shape];
  if (spec.kind === 'int64') return { dtype: 'int64', shape, data: BigInt64Array.from(data, (v) => BigInt(v)) };
  if (spec.kind === 'bool') return { dtype: 'bool', shape, data: Uint8Array.from(data) };
  return { dtype, shape, data: dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data) };
};

const differentiable = (c: VjpCase): number[] =>
  c.inputs.flatMap((s, i) => ((s.kind ?? 'float') === 'float' && s.grad !== false ? [i] : []));

/** loss = Σ op(inputs) ⊙ R with a fixed random R, so every output element matters. */
export const buildLoss = (c: VjpCase, dtype: Float, withGrads: boolean) => {
  const g = new GraphBuilder();
  const xs = c.inputs.map((s, i) => g.input(`x${i}`, s.kind === 'int64' ? 'int64' : s.kind === 'bool' ? 'bool' : dtype, s.shape));
  const y = c.build(...xs);
  const shape = y.shape as number[];
  const r = uniform(shape.reduce((a, b) => a * b, 1), -1, 1, 4242);
  const weights = g.constant(dtype === 'float64' ? r : Float32Array.from(r), dtype, shape);
  g.output(reduceSum(mul(y, weights), [], { keepdims: false }), 'loss');
  const forward = g.build();
  if (!withGrads) return { graph: forward, grads: new Map<string, string>(), weights: r };
  const wrt = differentiable(c).map((i) => `x${i}`);
  const { graph, grads } = gradients(forward, { loss: 'loss', wrt });
  return { graph, grads, weights: r };
};

const runGrads = async (c: VjpCase, dtype: Float, data: Float64Array[]): Promise<Map<number, Float64Array>> => {
  const { graph, grads } = buildLoss(c, dtype, true);
  const session = await Session.create(graph, { threads: 1 });
  try {
    const feeds = Object.fromEntries(c.inputs.map((s, i) => [`x${i}`, host(s, data[i]!, dtype)]));
    const out = await session.run(feeds);
    return new Map(differentiable(c).map((i) => [i, Float64Array.from(out[grads.get(`x${i}`)!]!.data as Float64Array)]));
  } finally {
    await session.release();
  }
};

const centralDifferences = async (
  data: Float64Array[],
  wanted: number[],
  lossAt: (xs: Float64Array[]) => Promise<number>,
): Promise<Map<number, Float64Array>> => {
  const out = new Map<number, Float64Array>();
  for (const i of wanted) {
    const g = new Float64Array(data[i]!.length);
    for (let k = 0; k < g.length; k++) {
      const plus = data.map((d) => Float64Array.from(d));
      const minus = data.map((d) => Float64Array.from(d));
      const h = FD_STEP * Math.max(1, Math.abs(data[i]![k]!));
      plus[i]![k]! += h;
      minus[i]![k]! -= h;
      g[k] = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * h);
    }
    out.set(i, g);
  }
  return out;
};

const maxAbs = (a: Float64Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

export const expectClose = (label: string, got: Float64Array, want: Float64Array, rtol: number, atol: number): void => {
  expect(got.length, `${label}: length`).toBe(want.length);
  let err = 0;
  for (let k = 0; k < got.length; k++) err = Math.max(err, Math.abs(got[k]! - want[k]!));
  const bound = rtol * maxAbs(want) + atol;
  expect(err, `${label}: max|g − ĝ| = ${err.toExponential(3)} > ${bound.toExponential(3)} (max|ĝ| ${maxAbs(want).toExponential(3)})`).toBeLessThanOrEqual(bound);
  expect(Number.isFinite(err), `${label}: non-finite gradient`).toBe(true);
};

const float64Supported = async (c: VjpCase): Promise<boolean> => {
  try {
    const s = await Session.create(buildLoss(c, 'float64', true).graph, { threads: 1 });
    await s.release();
    return true;
  } catch (err) {
    if (/NOT_IMPLEMENTED|Could not find an implementation/i.test(String(err))) return false;
    throw err;
  }
};

export const checkVjp = async (c: VjpCase): Promise<void> => {
  const data = c.inputs.map(inputData);
  const wanted = differentiable(c);
  expect(wanted.length, `${c.name}: case has no differentiable input`).toBeGreaterThan(0);
  const has64 = await float64Supported(c);
  expect(has64, `${c.name}: ORT ${has64 ? 'has' : 'lacks'} a float64 kernel; the table says noFloat64=${Boolean(c.noFloat64)}`).toBe(!c.noFloat64);

  const grads32 = await runGrads(c, 'float32', data);
  let reference: Map<number, Float64Array>;
  if (c.noFloat64) {
    const { weights } = buildLoss(c, 'float32', false);
    const ref = c.noFloat64.ref;
    reference = await centralDifferences(data, wanted, async (xs) => ref(xs).reduce((s, v, k) => s + v * weights[k]!, 0));
  } else {
    const grads64 = await runGrads(c, 'float64', data);
    const { graph } = buildLoss(c, 'float64', false);
    const session = await Session.create(graph, { threads: 1 });
    try {
      const fd = await centralDifferences(data, wanted, async (xs) => {
        const feeds = Object.fromEntries(c.inputs.map((s, i) => [`x${i}`, host(s, xs[i]!, 'float64')]));
        return Number((await session.run(feeds)).loss!.data[0]);
      });
      for (const i of wanted) expectClose(`${c.name} x${i} float64 vs finite differences`, grads64.get(i)!, fd.get(i)!, RTOL64, 1e-9);
    } finally {
      await session.release();
    }
    reference = grads64;
  }
  for (const i of wanted) {
    expectClose(`${c.name} x${i} float32 vs float64`, grads32.get(i)!, reference.get(i)!, c.rtol32 ?? RTOL32, 1e-6);
  }
};
