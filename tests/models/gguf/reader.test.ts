import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantizeTensor, q4Blocks } from '../../../main/models/gguf/dequant.ts';
import { openGguf } from '../../../main/models/gguf/reader.ts';
import { GgmlType, GgufError, type GgufErrorKind } from '../../../main/models/gguf/types.ts';
import { buildGguf, f32Bytes, writeGguf } from './write-gguf.ts';

const dir = mkdtempSync(join(tmpdir(), 'peft-gguf-reader-'));
let n = 0;
const path = (name = 'm'): string => join(dir, `${name}-${n++}.gguf`);

/** The error thrown by fn, checked to be a GgufError of `kind` whose message names the file. */
const ggufError = (file: string, kind: GgufErrorKind, fn: () => unknown): GgufError => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a GgufError').toBeInstanceOf(GgufError);
  const err = caught as GgufError;
  expect(err.kind).toBe(kind);
  expect(err.file).toBe(file);
  expect(err.message).toContain(file);
  return err;
};

describe('GGUF header and metadata', () => {
  it('reads every metadata value type, string arrays and nested arrays', () => {
    const file = path();
    writeGguf(file, {
      metadata: {
        'general.architecture': { type: 'string', value: 'llama' },
        u8: { type: 'u8', value: 250 },
        i8: { type: 'i8', value: -7 },
        u16: { type: 'u16', value: 65535 },
        i16: { type: 'i16', value: -32768 },
        u32: { type: 'u32', value: 4294967295 },
        i32: { type: 'i32', value: -5 },
        f32: { type: 'f32', value: 0.1 },
        f64: { type: 'f64', value: 0.1 },
        yes: { type: 'bool', value: true },
        small64: { type: 'u64', value: 42n },
        big64: { type: 'u64', value: 2n ** 63n + 1n },
        neg64: { type: 'i64', value: -(2n ** 62n) },
        text: { type: 'string', value: 'ünïcødé ✓' },
        strings: { type: 'array', itemType: 'string', items: ['a', '', '<|im_end|>'].map((value) => ({ type: 'string', value })) },
        nested: {
          type: 'array',
          itemType: 'array',
          items: [
            { type: 'array', itemType: 'i32', items: [1, 2].map((value) => ({ type: 'i32', value })) },
            { type: 'array', itemType: 'string', items: [{ type: 'string', value: 'x' }] },
          ],
        },
      },
    });
    const g = openGguf(file);
    expect(g.version).toBe(3);
    expect(g.architecture).toBe('llama');
    expect(g.value('u8')).toBe(250);
    expect(g.value('i8')).toBe(-7);
    expect(g.value('u16')).toBe(65535);
    expect(g.value('i16')).toBe(-32768);
    expect(g.value('u32')).toBe(4294967295);
    expect(g.value('i32')).toBe(-5);
    expect(g.value('f32')).toBe(Math.fround(0.1));
    expect(g.value('f64')).toBe(0.1);
    expect(g.bool('yes')).toBe(true);
    expect(g.value('small64')).toBe(42);
    expect(g.value('big64')).toBe(2n ** 63n + 1n);
    expect(g.value('neg64')).toBe(-(2n ** 62n));
    expect(g.string('text')).toBe('ünïcødé ✓');
    expect(g.array('strings')).toEqual(['a', '', '<|im_end|>']);
    expect(g.metadata.get('strings')).toMatchObject({ type: 9, itemType: 8 });
    expect(g.array('nested')).toEqual([[1, 2], ['x']]);
    expect(g.metadata.get('nested')).toMatchObject({ type: 9, itemType: 9 });
    expect(g.tensors).toEqual([]);
  });

  it('tensor infos: ggml dims order, offsets, default and custom alignment, data section start', () => {
    for (const alignment of [undefined, 64]) {
      const file = path();
      const a = { name: 'a', dims: [3], type: GgmlType.F32, data: f32Bytes([1, 2, 3]) };
      const b = { name: 'b', dims: [2, 3], type: GgmlType.F32, data: f32Bytes([1, 2, 3, 4, 5, 6]) };
      const bytes = writeGguf(file, { tensors: [a, b], ...(alignment ? { alignment } : {}) });
      const g = openGguf(file);
      const align = alignment ?? 32;
      expect(g.alignment).toBe(align);
      expect(g.dataOffset % align).toBe(0);
      expect(g.dataOffset + g.tensors[1]!.offset + 24).toBe(bytes.length);
      expect(g.tensors.map((t) => [t.name, t.dims, t.typeName, t.nElements, t.byteLength])).toEqual([
        ['a', [3], 'F32', 3, 12],
        ['b', [2, 3], 'F32', 6, 24],
      ]);
      expect(g.tensors[1]!.offset).toBe(align); // 12 bytes of 'a', padded
      expect(g.requireTensor('b').fileOffset).toBe(g.dataOffset + align);
      expect(Array.from(dequantizeTensor(g, g.requireTensor('b')))).toEqual([1, 2, 3, 4, 5, 6]);
    }
  });

  it('reads v2 files', () => {
    const file = path();
    writeGguf(file, { version: 2, tensors: [{ name: 'x', dims: [2], type: GgmlType.F32, data: f32Bytes([5, 6]) }] });
    const g = openGguf(file);
    expect(g.version).toBe(2);
    expect(Array.from(dequantizeTensor(g, g.requireTensor('x')))).toEqual([5, 6]);
  });
});

describe('hand-checked dequantization (no oracle needed)', () => {
  it('F16 and BF16 special values keep their bits: subnormals, ±0, ±inf, NaN', () => {
    const halves = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00];
    const f16 = new Uint8Array(new Uint16Array(halves).buffer);
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbf80, 0x0001, 0x7f80, 0x8000]).buffer);
    const file = path();
    writeGguf(file, {
      tensors: [
        { name: 'h', dims: [halves.length], type: GgmlType.F16, data: f16 },
        { name: 'b', dims: [5], type: GgmlType.BF16, data: bf16 },
      ],
    });
    const g = openGguf(file);
    const h = Array.from(dequantizeTensor(g, g.requireTensor('h')));
    expect(h).toEqual([0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 65504, Infinity, -Infinity, NaN]);
    expect(Object.is(h[1], -0)).toBe(true);
    const b = dequantizeTensor(g, g.requireTensor('b'));
    expect(Array.from(new Uint32Array(b.buffer))).toEqual([0x3f800000, 0xbf800000, 0x00010000, 0x7f800000, 0x80000000]);
  });

  it('Q4_0 and Q4_1 blocks: values and raw blocks (low nibbles first, then high nibbles)', () => {
    // d = 0.5 (fp16 0x3800), m = -1 (fp16 0xbc00); qs[j] = j | (15 - j) << 4
    const qs = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
    const q40 = Uint8Array.from([0x00, 0x38, ...qs]);
    const q41 = Uint8Array.from([0x00, 0x38, 0x00, 0xbc, ...qs]);
    const file = path();
    writeGguf(file, {
      tensors: [
        { name: 'q40', dims: [32], type: GgmlType.Q4_0, data: q40 },
        { name: 'q41', dims: [32], type: GgmlType.Q4_1, data: q41 },
      ],
    });
    const g = openGguf(file);
    const codes = [...Array.from({ length: 16 }, (_, j) => j), ...Array.from({ length: 16 }, (_, j) => 15 - j)];
    expect(Array.from(dequantizeTensor(g, g.requireTensor('q40')))).toEqual(codes.map((c) => 0.5 * (c - 8)));
    expect(Array.from(dequantizeTensor(g, g.requireTensor('q41')))).toEqual(codes.map((c) => 0.5 * c - 1));
    const b0 = q4Blocks(g, g.requireTensor('q40'));
    expect(b0).toMatchObject({ type: 'Q4_0', blockSize: 32, zeroPoint: 8 });
    expect(Array.from(b0.codes)).toEqual(codes);
    expect(Array.from(b0.scales)).toEqual([0.5]);
    const b1 = q4Blocks(g, g.requireTensor('q41'));
    expect(b1.type).toBe('Q4_1');
    expect(Array.from(b1.mins!)).toEqual([-1]);
    expect(() => q4Blocks(g, { ...g.requireTensor('q40'), type: GgmlType.Q8_0 })).toThrow(/not Q4_0\/Q4_1/);
  });
});

describe('GGUF errors name the file and what is wrong', () => {
  const tensor = { name: 'blk.0.attn_q.weight', dims: [32, 2], type: GgmlType.F32, data: f32Bytes(new Array<number>(64).fill(1)) };

  it('bad magic', () => {
    const file = path('magic');
    writeGguf(file, { magic: 'GGML' });
    const err = ggufError(file, 'bad-magic', () => openGguf(file));
    expect(err.message).toMatch(/not a GGUF file: bad magic/);
    const tiny = path('tiny');
    writeFileSync(tiny, 'GG');
    ggufError(tiny, 'bad-magic', () => openGguf(tiny));
  });

  it('unsupported versions (v1, v4) and big-endian files', () => {
    for (const version of [1, 4]) {
      const file = path('version');
      writeGguf(file, { version });
      expect(ggufError(file, 'unsupported-version', () => openGguf(file)).message).toContain(`unsupported GGUF version ${version}`);
    }
    const file = path('be');
    writeGguf(file, { version: 0x03000000 });
    expect(ggufError(file, 'big-endian', () => openGguf(file)).message).toContain('big-endian');
  });

  it('a truncated download names the first tensor whose data is cut off', () => {
    const file = path('cut');
    const bytes = writeGguf(file, { tensors: [{ ...tensor, name: 'first' }, tensor] });
    truncateSync(file, bytes.length - 10);
    const err = ggufError(file, 'truncated', () => openGguf(file));
    expect(err.tensor).toBe('blk.0.attn_q.weight');
    expect(err.message).toContain("tensor 'blk.0.attn_q.weight'");
    expect(err.message).toContain('runs past the end of the file');
  });

  it('a file cut inside the header says what was being read', () => {
    const file = path('cuthead');
    const bytes = buildGguf({ metadata: { 'general.name': { type: 'string', value: 'a rather long model name' } }, tensors: [tensor] });
    writeFileSync(file, bytes.subarray(0, 60)); // inside the value of general.name
    expect(ggufError(file, 'truncated', () => openGguf(file)).message).toContain("metadata 'general.name'");
  });

  it('a file that shrinks after opening fails on the tensor read, naming the tensor', () => {
    const file = path('shrink');
    const bytes = writeGguf(file, { tensors: [tensor] });
    const g = openGguf(file);
    truncateSync(file, bytes.length - 4);
    expect(ggufError(file, 'truncated', () => dequantizeTensor(g, g.requireTensor(tensor.name))).tensor).toBe(tensor.name);
  });

  it('unknown ggml type: the file still opens; dequantizing names the tensor and the type number', () => {
    const file = path('unknown');
    writeGguf(file, { tensors: [{ ...tensor, type: 99 }] });
    const g = openGguf(file);
    expect(g.requireTensor(tensor.name)).toMatchObject({ type: 99, typeName: 'type 99', byteLength: undefined });
    const err = ggufError(file, 'unknown-type', () => dequantizeTensor(g, g.requireTensor(tensor.name)));
    expect(err.tensor).toBe(tensor.name);
    expect(err.message).toContain(`tensor '${tensor.name}' has unknown ggml type 99`);
  });

  it('known but unsupported types (Q2_K) say so and list what is supported', () => {
    const file = path('q2k');
    writeGguf(file, { tensors: [{ name: 'w', dims: [256], type: GgmlType.Q2_K, data: new Uint8Array(84) }] });
    const g = openGguf(file);
    const err = ggufError(file, 'unsupported-type', () => dequantizeTensor(g, g.requireTensor('w')));
    expect(err.message).toContain("tensor 'w' is Q2_K (ggml type 10)");
    expect(err.message).toContain('Q6_K');
  });

  it('missing tensors and malformed row lengths', () => {
    const file = path('rows');
    writeGguf(file, { tensors: [{ name: 'w', dims: [16], type: GgmlType.Q8_0, data: new Uint8Array(34) }] });
    expect(ggufError(file, 'malformed', () => openGguf(file)).message).toContain('not a multiple of its block size 32');
    const ok = path('ok');
    writeGguf(ok, { tensors: [tensor] });
    expect(ggufError(ok, 'missing-tensor', () => openGguf(ok).requireTensor('nope')).tensor).toBe('nope');
  });
});
