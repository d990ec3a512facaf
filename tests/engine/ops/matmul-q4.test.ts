import { describe, expect, it } from 'vitest';
import { gradients } from '../../../main/engine/autodiff/gradients.ts';
import { GraphBuilder, mul, packQ4Codes, packQ4ZeroPoints, reduceSum } from '../../../main/engine/ir/index.ts';
import { linearQ4 } from '../../../main/engine/nn/linear.ts';
import { checkCudaSupport } from '../../../main/engine/onnx/cuda-support.ts';
import { emitOnnx } from '../../../main/engine/onnx/emit.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';
import { seededRandom } from '../../helpers/random.ts';

describe('4-bit matmul (MatMulNBits) for frozen quantized weights', () => {
  it('forward (with zero points and block offsets) and the gradient w.r.t. x equal the dequantized float computation', async () => {
    const [rows, n, k, bs] = [3, 8, 64, 32];
    const rnd = seededRandom(9);
    const codes = Uint8Array.from({ length: n * k }, () => Math.floor(rnd() * 16));
    const scales = Float32Array.from({ length: (n * k) / bs }, () => 0.01 + 0.05 * rnd());
    const zps = Uint8Array.from({ length: (n * k) / bs }, () => Math.floor(rnd() * 16)); // 4-bit zero points
    const mins = Float32Array.from({ length: (n * k) / bs }, () => rnd() - 0.5); // GGUF Q4_1-style block offsets
    const w = Float32Array.from(codes, (c, i) => (c - zps[Math.floor(i / bs)]!) * scales[Math.floor(i / bs)]! + mins[Math.floor(i / bs)]!);
    const x = Float32Array.from({ length: rows * k }, () => rnd() - 0.5);
    const up = Float32Array.from({ length: rows * n }, () => rnd() - 0.5);

    const g = new GraphBuilder();
    const xIn = g.input('x', 'float32', ['rows', k]);
    const upIn = g.input('up', 'float32', ['rows', n]);
    const q = {
      packed: g.initializer('proj.weight', 'uint8', [n, k / bs, bs / 2], { kind: 'inline', data: packQ4Codes(codes, n, k) }),
      scales: g.initializer('proj.scales', 'float32', [(n * k) / bs], { kind: 'inline', data: scales }),
      zeroPoints: g.initializer('proj.zero_points', 'uint8', [n], { kind: 'inline', data: packQ4ZeroPoints(zps, n, k / bs) }),
      mins: g.initializer('proj.mins', 'float32', [n, k / bs], { kind: 'inline', data: mins }),
      n, k, blockSize: bs,
    };
    const y = linearQ4(xIn, q, undefined, 'proj');
    g.output(y, 'y');
    g.output(reduceSum(mul(y, upIn), [], { keepdims: false }), 'loss');
    const { graph, grads } = gradients(g.build(), { loss: 'loss', wrt: ['x'] });
    expect(checkCudaSupport(emitOnnx(graph).proto)).toEqual([]);
    const s = await Session.create(graph, { threads: 1 });
    const out = await s.run({ x: { dtype: 'float32', shape: [rows, k], data: x }, up: { dtype: 'float32', shape: [rows, n], data: up } });
    await s.release();
    const yRef = new Float32Array(rows * n);
    const dxRef = new Float32Array(rows * k);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < n; o++) {
        let acc = 0;
        for (let i = 0; i < k; i++) {
          acc += x[r * k + i]! * w[o * k + i]!;
          dxRef[r * k + i]! += up[r * n + o]! * w[o * k + i]!;
        }
        yRef[r * n + o] = acc;
      }
    }
    const maxErr = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    expect(maxErr(out.y!.data as Float32Array, yRef)).toBeLessThan(1e-4);
    expect(maxErr(out[grads.get('x')!]!.data as Float32Array, dxRef)).toBeLessThan(1e-5);
  });
});
