import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { halfToFloat } from '../../main/engine/io/safetensors.ts';
import { createRng, normalArray } from '../../main/engine/random.ts';
import { ExportError } from '../../main/models/export/errors.ts';
import { floatToBf16, floatToHalf } from '../../main/models/export/float16.ts';
import { dequantizeTensor } from '../../main/models/gguf/dequant.ts';
import { openGguf } from '../../main/models/gguf/reader.ts';
import { GgmlType, GgufValueType } from '../../main/models/gguf/types.ts';
import { encodeGgufTensor, encodeQ8_0, ggufValue, writeGguf, type GgufTensorSpec } from '../../main/models/gguf/writer.ts';
import { writeGgufLora } from '../../main/models/export/gguf-lora.ts';
import { describeOracle, runOracle } from '../helpers/oracle.ts';

/** Values with the edge cases of each encoding: f16 ties, subnormals and overflow; Q8_0 all-zero and x·(1/d) = k + ½ blocks. */
const trickyValues = (): Float32Array => {
  const v = normalArray(64 * 6, 0.7, createRng(1));
  v.fill(0, 64, 96); // an all-zero Q8_0 block
  for (let j = 0; j < 32; j++) v[96 + j] = j === 0 ? 127 : j - 16 + 0.5; // d = 1: codes at exact halves
  const f16 = [1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 ** -25, 3 * 2 ** -26, 2 ** -24 * 1.5, 65519, 65520, -1e9, 6e-8, 1e-10, 0.1];
  v.set(f16, 128);
  return v;
};

const METADATA = new Map([
  ['general.architecture', ggufValue.string('llama')],
  ['general.name', ggufValue.string('tést ✓')],
  ['test.u8', { type: GgufValueType.UINT8, value: 200 }],
  ['test.i8', { type: GgufValueType.INT8, value: -100 }],
  ['test.u16', { type: GgufValueType.UINT16, value: 60000 }],
  ['test.i16', { type: GgufValueType.INT16, value: -30000 }],
  ['test.u32', ggufValue.u32(4_000_000_000)],
  ['test.i32', ggufValue.i32(-2_000_000_000)],
  ['test.f32', ggufValue.f32(0.5)],
  ['test.f64', { type: GgufValueType.FLOAT64, value: Math.PI }],
  ['test.bool', ggufValue.bool(true)],
  ['test.u64', ggufValue.u64(2n ** 60n)],
  ['test.i64', { type: GgufValueType.INT64, value: -5 }],
  ['test.strings', ggufValue.strings(['a', 'Ġb c', '<|im_end|>', ''])],
  ['test.i32s', ggufValue.i32s([1, -2, 3])],
  ['test.f32s', ggufValue.f32s([0.25, -1.5])],
]);

const writeTest = (dir: string, values: Float32Array) => {
  const path = join(dir, 'test.gguf');
  const tensors: GgufTensorSpec[] = [
    { name: 'a.f32', dims: [64, 6], type: GgmlType.F32, data: () => encodeGgufTensor(values, GgmlType.F32) },
    { name: 'b.f16', dims: [64, 6], type: GgmlType.F16, data: () => encodeGgufTensor(values, GgmlType.F16) },
    { name: 'c.q8_0', dims: [64, 6], type: GgmlType.Q8_0, data: () => encodeGgufTensor(values, GgmlType.Q8_0) },
    { name: 'd.vector', dims: [3], type: GgmlType.F32, data: () => encodeGgufTensor(Float32Array.of(1, 2, 3), GgmlType.F32) },
  ];
  writeGguf(path, { metadata: METADATA, tensors });
  return path;
};

describe('GGUF writer', () => {
  it('float16 conversion rounds to nearest even, bit for bit, over every half value and the midpoints between them', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = halfToFloat(h);
      if (Number.isNaN(f)) continue;
      expect(floatToHalf(f)).toBe(h);
      const next = halfToFloat(h + 1);
      if ((h & 0x7fff) < 0x7bff && !(h & 0x8000)) {
        const mid = (f + next) / 2; // exactly representable in float32
        expect(floatToHalf(mid)).toBe(h & 1 ? h + 1 : h);
      }
    }
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });

  it('writes what the reader reads back: metadata types and values, dims, F32 / F16 / Q8_0 data', () => {
    const values = trickyValues();
    const file = openGguf(writeTest(mkdtempSync(join(tmpdir(), 'peft-gguf-w-')), values));
    expect(file.version).toBe(3);
    for (const [key, e] of METADATA) expect(file.metadata.get(key), key).toEqual(e.type === GgufValueType.FLOAT32 ? { ...e, value: Math.fround(e.value as number) } : e);
    expect(file.tensors.map((t) => [t.name, t.dims, t.typeName])).toEqual([
      ['a.f32', [64, 6], 'F32'], ['b.f16', [64, 6], 'F16'], ['c.q8_0', [64, 6], 'Q8_0'], ['d.vector', [3], 'F32'],
    ]);
    expect(dequantizeTensor(file, file.requireTensor('a.f32'))).toEqual(values);
    expect(dequantizeTensor(file, file.requireTensor('b.f16'))).toEqual(Float32Array.from(values, (v) => halfToFloat(floatToHalf(v))));
    const q = dequantizeTensor(file, file.requireTensor('c.q8_0'));
    for (let b = 0; b < values.length / 32; b++) {
      const block = values.subarray(b * 32, b * 32 + 32);
      const d = Math.max(...block.map(Math.abs)) / 127; // the scale is stored as f16: ±127·d·2⁻¹¹ more
      if (d > 65504) continue; // beyond f16 (the -1e9 block): ggml and gguf-py overflow the same way
      block.forEach((v, j) => expect(Math.abs(q[b * 32 + j]! - v)).toBeLessThanOrEqual(0.5 * d + 127 * d * 2 ** -11 + 1e-30));
    }
    expect(q.subarray(64, 96).every((v) => v === 0)).toBe(true);
  });

  it('never leaves a partial file: a failing tensor aborts the write, an existing file or an input is not overwritten', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-gguf-atomic-'));
    const path = join(dir, 'out.gguf');
    const bad: GgufTensorSpec = { name: 'x', dims: [32], type: GgmlType.F32, data: () => new Uint8Array(12) };
    expect(() => writeGguf(path, { metadata: METADATA, tensors: [bad] })).toThrow(/tensor 'x'.*needs 128 bytes, got 12/);
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(path, 'precious');
    const spec = { architecture: 'llama', alpha: 8, heads: { numHeads: 2, numKvHeads: 1 }, modules: [] };
    expect(() => writeGgufLora(path, spec)).toThrow(ExportError);
    expect(() => writeGgufLora(join(dir, 'adapter'), { ...spec, inputs: [join(dir, 'adapter')] })).toThrow(/overwrite or sit inside the input/);
    expect(readFileSync(path, 'utf8')).toBe('precious');
    expect(() => encodeQ8_0(new Float32Array(33))).toThrow(/multiple of 32/);
    expect(existsSync(`${path}.partial`)).toBe(false);
  });
});

describeOracle('GGUF writer vs gguf-py (oracle)', () => {
  it('gguf-py reads our file as written, and our F16 / Q8_0 bytes equal gguf.quants.quantize', () => {
    const dir = mkdtempSync(join(tmpdir(), 'peft-gguf-py-'));
    const values = trickyValues();
    const path = writeTest(dir, values);
    const valuesFile = join(dir, 'values.f32');
    writeFileSync(valuesFile, Buffer.from(values.buffer));
    const ref = runOracle<{ metadata: Record<string, { types: string[]; value: unknown }>; tensors: { name: string; shape: number[]; type: string; n_bytes: number; sha: string }[] }>(
      'peft_merge_gguf_check.py', [path, valuesFile, join(dir, 'py')],
    );
    expect(ref.metadata['general.name']).toEqual({ types: ['STRING'], value: 'tést ✓' });
    expect(ref.metadata['test.u64']!.value).toBe(Number(2n ** 60n));
    expect(ref.metadata['test.strings']).toEqual({ types: ['ARRAY', 'STRING'], value: ['a', 'Ġb c', '<|im_end|>', ''] });
    expect(ref.metadata['test.i16']).toEqual({ types: ['INT16'], value: -30000 });
    expect(ref.metadata['test.f64']!.value).toBe(Math.PI);
    const f16 = encodeGgufTensor(values, GgmlType.F16);
    const q8 = encodeQ8_0(values);
    expect(Buffer.from(f16).equals(readFileSync(join(dir, 'py', 'f16.bin')))).toBe(true);
    expect(Buffer.from(q8).equals(readFileSync(join(dir, 'py', 'q8_0.bin')))).toBe(true);
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
    expect(ref.tensors.map((t) => [t.name, t.type, t.n_bytes, t.sha])).toEqual([
      ['a.f32', 'F32', 64 * 6 * 4, sha(encodeGgufTensor(values, GgmlType.F32))],
      ['b.f16', 'F16', 64 * 6 * 2, sha(f16)],
      ['c.q8_0', 'Q8_0', 12 * 34, sha(q8)],
      ['d.vector', 'F32', 12, sha(new Uint8Array(Float32Array.of(1, 2, 3).buffer))],
    ]);
  });
});
