import { describe, expect, it } from 'vitest';
import { GraphBuilder, dequantizeLinear, matmul, packInt4, transposeLast } from '../../../main/engine/ir/index.ts';
import { Session } from '../../../main/engine/onnx/runtime.ts';
import { seededRandom } from '../../helpers/random.ts';

describe('packed 4-bit weights', () => {
  it('packs int4 low nibble first', () => {
    expect(Array.from(packInt4([1, -1, 7, -8, 3]))).toEqual([0xf1, 0x87, 0x03]);
  });

  it('dequantizes blocked int4 initializers in ORT exactly as (q · scale) and multiplies with them', async () => {
    const [rows, cols, block] = [4, 64, 32];
    const rnd = seededRandom(5);
    const q = Int8Array.from({ length: rows * cols }, () => Math.floor(rnd() * 16) - 8);
    const scales = Float32Array.from({ length: rows * (cols / block) }, () => 0.01 + rnd() * 0.1);
    const g = new GraphBuilder();
    const w = g.initializer('w.qweight', 'int4', [rows, cols], { kind: 'inline', data: packInt4(q) });
    const s = g.initializer('w.scales', 'float32', [rows, cols / block], { kind: 'inline', data: scales });
    const dq = dequantizeLinear(w, s, { axis: 1, blockSize: block }); // (rows, cols)
    g.output(dq, 'w');
    const x = g.input('x', 'float32', [2, cols]);
    g.output(matmul(x, transposeLast(dq)), 'y');
    const session = await Session.create(g.build(), { threads: 1 });
    const xs = Float32Array.from({ length: 2 * cols }, () => rnd() - 0.5);
    const out = await session.run({ x: { dtype: 'float32', shape: [2, cols], data: xs } });
    const want = Float32Array.from(q, (v, i) => v * scales[Math.floor(i / cols) * (cols / block) + Math.floor((i % cols) / block)]!);
    expect(out.w!.data).toEqual(want);
    for (let r = 0; r < 2; r++) {
      for (let o = 0; o < rows; o++) {
        let dot = 0;
        for (let k = 0; k < cols; k++) dot += xs[r * cols + k]! * want[o * cols + k]!;
        expect((out.y!.data as Float32Array)[r * rows + o]).toBeCloseTo(dot, 5);
      }
    }
    await session.release();
  });

  it('refuses scales that do not fit the blocks, naming the node and shapes', () => {
    const g = new GraphBuilder();
    const w = g.initializer('w', 'int4', [4, 64], { kind: 'inline', data: new Uint8Array(128) });
    const s = g.initializer('s', 'float32', [4, 3], { kind: 'inline', data: new Float32Array(12) });
    expect(() => dequantizeLinear(w, s, { blockSize: 32, name: 'q_proj.dq' })).toThrow(/DequantizeLinear 'q_proj.dq': scale float32\[4, 3\] does not fit int4\[4, 64\]/);
  });
});
