import { writeFileSync } from 'node:fs';
import { GgufValueType } from '../../../main/models/gguf/types.ts';

/**
 * A minimal GGUF writer for tests that must not need Python: broken files (bad magic, truncation, unknown
 * types) and hand-made metadata. The Python oracle's gguf.GGUFWriter makes the reference files.
 */

export type TestValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64' | 'bool'; value: number | boolean }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: TestValue['type']; items: TestValue[] };

export interface TestTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

const TYPE_CODE: Record<TestValue['type'], number> = {
  u8: GgufValueType.UINT8,
  i8: GgufValueType.INT8,
  u16: GgufValueType.UINT16,
  i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32,
  i32: GgufValueType.INT32,
  f32: GgufValueType.FLOAT32,
  bool: GgufValueType.BOOL,
  string: GgufValueType.STRING,
  array: GgufValueType.ARRAY,
  u64: GgufValueType.UINT64,
  i64: GgufValueType.INT64,
  f64: GgufValueType.FLOAT64,
};

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  value(v: TestValue): void {
    const b = Buffer.alloc(8);
    switch (v.type) {
      case 'u8': b.writeUInt8(v.value as number); return this.push(b.subarray(0, 1));
      case 'i8': b.writeInt8(v.value as number); return this.push(b.subarray(0, 1));
      case 'bool': b.writeUInt8(v.value ? 1 : 0); return this.push(b.subarray(0, 1));
      case 'u16': b.writeUInt16LE(v.value as number); return this.push(b.subarray(0, 2));
      case 'i16': b.writeInt16LE(v.value as number); return this.push(b.subarray(0, 2));
      case 'u32': b.writeUInt32LE(v.value as number); return this.push(b.subarray(0, 4));
      case 'i32': b.writeInt32LE(v.value as number); return this.push(b.subarray(0, 4));
      case 'f32': b.writeFloatLE(v.value as number); return this.push(b.subarray(0, 4));
      case 'f64': b.writeDoubleLE(v.value as number); return this.push(b);
      case 'u64': b.writeBigUInt64LE(v.value); return this.push(b);
      case 'i64': b.writeBigInt64LE(v.value); return this.push(b);
      case 'string': return this.string(v.value);
      case 'array':
        this.u32(TYPE_CODE[v.itemType]);
        this.u64(v.items.length);
        for (const item of v.items) this.value(item);
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface TestGgufOptions {
  metadata?: Record<string, TestValue>;
  tensors?: TestTensor[];
  version?: number;
  alignment?: number; // written as general.alignment when given
  magic?: string;
}

/** Builds GGUF bytes: header, metadata, tensor infos, padding, data (each tensor aligned). */
export const buildGguf = (opts: TestGgufOptions): Buffer => {
  const align = opts.alignment ?? 32;
  const metadata = { ...(opts.metadata ?? {}) };
  if (opts.alignment !== undefined) metadata['general.alignment'] = { type: 'u32', value: opts.alignment };
  const tensors = opts.tensors ?? [];
  const h = new Bytes();
  h.push(Buffer.from(opts.magic ?? 'GGUF', 'latin1'));
  h.u32(opts.version ?? 3);
  h.u64(tensors.length);
  h.u64(Object.keys(metadata).length);
  for (const [key, v] of Object.entries(metadata)) {
    h.string(key);
    h.u32(TYPE_CODE[v.type]);
    h.value(v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset = Math.ceil((offset + t.data.length) / align) * align;
  }
  tensors.forEach((t, i) => {
    h.string(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(t.type);
    h.u64(offsets[i]!);
  });
  const header = h.concat();
  const dataStart = Math.ceil(header.length / align) * align;
  const out = Buffer.alloc(dataStart + (tensors.length ? offsets.at(-1)! + tensors.at(-1)!.data.length : 0));
  header.copy(out, 0);
  tensors.forEach((t, i) => out.set(t.data, dataStart + offsets[i]!));
  return out;
};

export const writeGguf = (path: string, opts: TestGgufOptions): Buffer => {
  const bytes = buildGguf(opts);
  writeFileSync(path, bytes);
  return bytes;
};

export const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);
