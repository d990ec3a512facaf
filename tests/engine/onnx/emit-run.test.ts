import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, add, reduceMean, reshape, mul } from '../../../main/engine/ir/index.ts';
import { linear } from '../../../main/engine/nn/linear.ts';
import { OPSET, emitOnnx } from '../../../main/engine/onnx/emit.ts';
import { Session, planProvider } from '../../../main/engine/onnx/runtime.ts';

/** A minimal .safetensors file: 8-byte header length, JSON header, then the raw tensor bytes. */
const writeSafetensors = (dir: string, tensors: Record<string, { shape: number[]; data: Float32Array }>): { file: string; offsets: Record<string, [number, number]> } => {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = join(dir, 'model.safetensors');
  writeFileSync(file, Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer))]));
  const base = 8 + json.length;
  const offsets = Object.fromEntries(
    Object.entries(header).map(([k, v]) => {
      const [s, e] = (v as { data_offsets: [number, number] }).data_offsets;
      return [k, [base + s, e - s] as [number, number]];
    }),
  );
  return { file, offsets };
};

describe('ONNX emission and the runtime', () => {
  it('emits opset 21 and runs frozen weights straight out of a .safetensors file (external data)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-emit-'));
    const w = Float32Array.from({ length: 12 }, (_, i) => i / 10); // (out 3, in 4)
    const bias = new Float32Array([1, 2, 3]);
    const { file, offsets } = writeSafetensors(dir, { 'proj.bias': { shape: [3], data: bias }, 'proj.weight': { shape: [3, 4], data: w } });
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 4]);
    const weight = g.initializer('proj.weight', 'float32', [3, 4], { kind: 'external', file, offset: offsets['proj.weight']![0], length: offsets['proj.weight']![1] });
    const b = g.initializer('proj.bias', 'float32', [3], { kind: 'external', file, offset: offsets['proj.bias']![0], length: offsets['proj.bias']![1] });
    g.output(linear(x, weight, b), 'y');
    const graph = g.build();

    const emitted = emitOnnx(graph, { externalLocation: () => 'weights.safetensors' });
    const proto = fromBinary(ModelProtoSchema, emitted.bytes);
    expect(proto.opsetImport.find((o) => o.domain === '')!.version).toBe(BigInt(OPSET));
    const init = proto.graph!.initializer.find((t) => t.name === 'proj.weight')!;
    expect(init.dataLocation).toBe(TensorProto_DataLocation.EXTERNAL);
    expect(Object.fromEntries(init.externalData.map((e) => [e.key, e.value]))).toEqual({
      location: 'weights.safetensors',
      offset: String(offsets['proj.weight']![0]),
      length: '48',
    });
    expect(emitted.externalFiles).toEqual([file]);

    const session = await Session.create(graph, { threads: 1 });
    const out = await session.run({ x: { dtype: 'float32', shape: [2, 4], data: new Float32Array([1, 0, 0, 0, 0, 1, 1, 0]) } });
    expect(Array.from(out.y!.data as Float32Array).map((v) => +v.toFixed(5))).toEqual([1, 2.4, 3.8, 1.3, 3.1, 4.9]);
    await session.release();
  });

  it('resolves symbolic dims at run time, so one session serves any batch and sequence length', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['batch', 'seq', 4]);
    const flat = reshape(x, [-1, 4]); // (batch·seq, 4)
    const back = reshape(mul(flat, 2), ['batch', 'seq', 4]);
    g.output(add(back, reduceMean(x, [1])), 'y');
    const session = await Session.create(g.build(), { threads: 1 });
    for (const [b, s] of [[1, 3], [2, 5]] as const) {
      const data = Float32Array.from({ length: b * s * 4 }, (_, i) => i);
      const out = await session.run({ x: { dtype: 'float32', shape: [b, s, 4], data } });
      expect(out.y!.shape).toEqual([b, s, 4]);
    }
    await session.release();
  });

  it('says which execution provider it chose and why', () => {
    const plan = planProvider('auto');
    expect(['cpu', 'cuda']).toContain(plan.provider);
    expect(plan.reason).toMatch(/^(cpu|cuda): /);
    expect(planProvider('cpu')).toEqual({ provider: 'cpu', reason: 'cpu: requested' });
  });
});
