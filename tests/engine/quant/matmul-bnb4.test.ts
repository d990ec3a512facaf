import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import { Graph, GraphBuilder, dequantizeBnb4, gemm, mul, packQ4Codes, packQ4ZeroPoints, q4InputGrad, reduceSum, type TensorType } from '../../../main/engine/ir/index.ts';
import { checkCudaSupport } from '../../../main/engine/onnx/cuda-support.ts';
import { emitOnnx } from '../../../main/engine/onnx/emit.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';
import { dequantizeAbsmax, quantizeAbsmax } from '../../../main/engine/quant/double-quant.ts';
import { dequantizeInt4, quantizeInt4 } from '../../../main/engine/quant/int4.ts';
import { dequantizeNf4, quantizeNf4 } from '../../../main/engine/quant/nf4.ts';
import { QuantizeError, quantizeBase, type QuantizeBaseOptions } from '../../../main/engine/quant/quantize-base.ts';
import { seededRandom } from '../../helpers/random.ts';

const [rows, n, k] = [3, 48, 64];
const rnd = seededRandom(5);
const weight = Float32Array.from({ length: n * k }, () => (rnd() - 0.5) * 0.2);
const bias = Float32Array.from({ length: n }, () => rnd() - 0.5);
const x = Float32Array.from({ length: rows * k }, () => rnd() - 0.5);
const up = Float32Array.from({ length: rows * n }, () => rnd() - 0.5);

/** y = x·Wᵀ + b as `linear` builds it (a Gemm named 'proj' reading 'proj.weight'), loss = Σ y ⊙ up. */
const floatGraph = (): Graph => {
  const g = new GraphBuilder();
  const xIn = g.input('x', 'float32', ['rows', k]);
  const upIn = g.input('up', 'float32', ['rows', n]);
  const w = g.initializer('proj.weight', 'float32', [n, k], { kind: 'inline', data: weight });
  const b = g.initializer('proj.bias', 'float32', [n], { kind: 'inline', data: bias });
  const y = gemm(xIn, w, b, { transB: true, name: 'proj' });
  g.output(y, 'y');
  g.output(reduceSum(mul(y, upIn), [], { keepdims: false }), 'loss');
  return g.build();
};

/** y and dx from the float weight `w` (float64 sums). */
const reference = (w: Float32Array) => {
  const y = new Float64Array(rows * n);
  const dx = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      let acc = bias[o]!;
      for (let i = 0; i < k; i++) {
        acc += x[r * k + i]! * w[o * k + i]!;
        dx[r * k + i]! += up[r * n + o]! * w[o * k + i]!;
      }
      y[r * n + o] = acc;
    }
  }
  return { y, dx };
};

const maxErr = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/**
 * Values ORT's constant folding would compute at session creation: outputs of nodes whose inputs are all
 * initializers or such values, except through DequantizeLinear (which ORT does not fold by default).
 */
const foldable = (graph: Graph): TensorType[] => {
  const constant = new Set(graph.initializers.keys());
  const out: TensorType[] = [];
  for (const node of graph.nodes) {
    if (node.op === 'DequantizeLinear' || !node.inputs.every((i) => constant.has(i))) continue;
    for (const o of node.outputs) {
      constant.add(o);
      out.push(graph.value(o).type);
    }
  }
  return out;
};
const numel = (t: TensorType) => t.shape.reduce<number>((a, d) => a * Number(d), 1);

/** Large float values ORT would fold into the model: a float32 copy of a 4-bit base weight held all along. */
const foldedWeights = (graph: Graph): TensorType[] => foldable(graph).filter((t) => numel(t) >= (n * k) / 4);

const run = async (o: QuantizeBaseOptions, checkFolding = true) => {
  const q = quantizeBase(floatGraph(), o);
  const { graph, grads } = gradients(q.graph, { loss: 'loss', wrt: ['x'] });
  expect(checkCudaSupport(emitOnnx(graph).proto)).toEqual([]);
  if (checkFolding) expect(foldedWeights(graph)).toEqual([]);
  const s = await Session.create(graph, { threads: 1 });
  const out = await s.run({ x: { dtype: 'float32', shape: [rows, k], data: x }, up: { dtype: 'float32', shape: [rows, n], data: up } });
  await s.release();
  return { q, y: out.y!.data as Float32Array, dx: out[grads.get('x')!]!.data as Float32Array };
};

describe('NF4 base weights (MatMulBnb4, bitsandbytes layout) and int4 (MatMulNBits) by quantizeBase', () => {
  it('NF4: the in-graph dequantization (table lookup × absmax) is bit-exact; forward and dx equal the dequantized float model', async () => {
    const q = quantizeNf4(weight, 64);
    const g = new GraphBuilder();
    const packed = g.initializer('p', 'uint8', [q.packed.length], { kind: 'inline', data: q.packed });
    const absmax = g.initializer('a', 'float32', [q.absmax.length], { kind: 'inline', data: q.absmax });
    g.output(dequantizeBnb4(packed, absmax, n, k, 64), 'w');
    const s = await Session.create(g.build(), { threads: 1 });
    const w = (await s.run({})).w!.data as Float32Array;
    await s.release();
    expect(Buffer.from(w.buffer)).toEqual(Buffer.from(dequantizeNf4(q).buffer));

    const { q: base, y, dx } = await run({ scheme: 'nf4' });
    expect(base.modules).toEqual([{ name: 'proj', outFeatures: n, inFeatures: k, bytes: (n * k) / 2 + 4 * ((n * k) / 64), float32Bytes: 4 * n * k }]);
    const ref = reference(dequantizeNf4(q));
    expect(maxErr(y, ref.y)).toBeLessThan(1e-5);
    expect(maxErr(dx, ref.dx)).toBeLessThan(1e-5);
  });

  it('NF4 with double quantization: the absmax computed in the graph is bit-exact; forward and dx follow it', async () => {
    const q = quantizeNf4(weight, 64);
    const absmax = dequantizeAbsmax(quantizeAbsmax(q.absmax));
    const { q: base, y, dx } = await run({ scheme: 'nf4', doubleQuant: true });
    const names = [...base.graph.initializers.keys()].map((id) => base.graph.value(id).name).filter((s) => s.startsWith('proj.weight'));
    expect(names.sort()).toEqual(['proj.weight', 'proj.weight.absmax.codes', 'proj.weight.absmax.offset', 'proj.weight.absmax.scales']);
    const g = GraphBuilder.from(base.graph);
    g.output(g.tensorByName('proj.absmax'), 'absmax_out');
    const s = await Session.create(g.build(), { threads: 1 });
    const got = (await s.run({ x: { dtype: 'float32', shape: [rows, k], data: x }, up: { dtype: 'float32', shape: [rows, n], data: up } })).absmax_out!.data as Float32Array;
    await s.release();
    expect(Buffer.from(got.buffer)).toEqual(Buffer.from(absmax.buffer));
    const ref = reference(dequantizeNf4(q, absmax));
    expect(maxErr(y, ref.y)).toBeLessThan(1e-5);
    expect(maxErr(dx, ref.dx)).toBeLessThan(1e-5);
  });

  it('int4 (asymmetric, 4-bit zero points; symmetric): MatMulNBits forward and dx equal the dequantized float model', async () => {
    for (const symmetric of [false, true]) {
      const { q: base, y, dx } = await run({ scheme: 'int4', symmetric }, false);
      expect(base.graph.nodes.find((nd) => nd.name === 'proj')!.op).toBe('MatMulNBits');
      expect(base.modules[0]!.bytes).toBe((n * k) / 2 + 4 * ((n * k) / 32) + (symmetric ? 0 : (n * k) / 64));
      const ref = reference(dequantizeInt4(quantizeInt4(weight, n, k, { symmetric })));
      expect(maxErr(y, ref.y)).toBeLessThan(1e-4);
      expect(maxErr(dx, ref.dx)).toBeLessThan(1e-5);
    }
  });

  it('int4: MatMulNBits’ dx dequantization is not folded into a float32 weight', () => {
    const { graph } = gradients(quantizeBase(floatGraph(), { scheme: 'int4' }).graph, { loss: 'loss', wrt: ['x'] });
    expect(foldedWeights(graph)).toEqual([]);
  });

  it('q4InputGrad: dx through MatMulNBits blocks, unfolded, equals gy · the dequantized weight', async () => {
    for (const [kk, symmetric] of [[k, false], [96, false], [96, true]] as const) {
      const w = Float32Array.from({ length: n * kk }, () => (rnd() - 0.5) * 0.2);
      const q = quantizeInt4(w, n, kk, { symmetric });
      const g = new GraphBuilder();
      const gy = g.input('gy', 'float32', ['rows', n]);
      const packed = g.initializer('p', 'uint8', [n, kk / 32, 16], { kind: 'inline', data: packQ4Codes(q.codes, n, kk) });
      const scales = g.initializer('s', 'float32', [q.scales.length], { kind: 'inline', data: q.scales });
      const zpBytes = q.zeroPoints && packQ4ZeroPoints(q.zeroPoints, n, kk / 32);
      const zp = zpBytes && g.initializer('z', 'uint8', [zpBytes.length], { kind: 'inline', data: zpBytes });
      g.output(q4InputGrad(gy, packed, scales, zp, n, kk, 32), 'dx');
      const graph = g.build();
      expect(foldedWeights(graph)).toEqual([]);
      expect(checkCudaSupport(emitOnnx(graph).proto)).toEqual([]);
      const s = await Session.create(graph, { threads: 1 });
      const dx = (await s.run({ gy: { dtype: 'float32', shape: [rows, n], data: up } })).dx!.data as Float32Array;
      await s.release();
      const wd = dequantizeInt4(q);
      const want = Float64Array.from({ length: rows * kk }, (_, i) => {
        const [r, c] = [Math.floor(i / kk), i % kk];
        let acc = 0;
        for (let o = 0; o < n; o++) acc += up[r * n + o]! * wd[o * kk + c]!;
        return acc;
      });
      expect(maxErr(dx, want)).toBeLessThan(1e-5);
    }
  });

  it('names the tensor it cannot quantize, and leaves the LM head and excluded modules in float', () => {
    expect(() => quantizeBase(floatGraph(), { scheme: 'int4', blockSize: 128 })).toThrow(QuantizeError);
    expect(() => quantizeBase(floatGraph(), { scheme: 'int4', blockSize: 128 })).toThrow(/'proj\.weight'/);
    const kept = quantizeBase(floatGraph(), { scheme: 'nf4', exclude: ['proj'] });
    expect(kept.modules).toEqual([]);
    expect(kept.graph.nodes.find((nd) => nd.name === 'proj')!.op).toBe('Gemm');
  });
});
