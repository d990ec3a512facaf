import { closeSync, fstatSync, openSync, readSync, renameSync, writeFileSync } from 'node:fs';
import type { DType } from '../ir/index.ts';

/** A .safetensors file is malformed or truncated; the message names the file and tensor. */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

/** One tensor's place in a .safetensors file: absolute byte range, dtype and shape. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly file: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly length: number;
}

const DTYPES: Readonly<Record<string, DType>> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool',
};
const BYTES: Readonly<Record<string, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1, BOOL: 1 };

/** Reads a .safetensors header (8-byte little-endian length, then JSON) and checks every range against the file. */
export const readSafetensorsHeader = (file: string): SafetensorsEntry[] => {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new SafetensorsError(`cannot open ${file}: ${(err as Error).message}`, file);
  }
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new SafetensorsError(`${file}: not a safetensors file (too short)`, file);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > 100_000_000 || 8 + headerLen > size) {
      throw new SafetensorsError(`${file}: header length ${headerLen} does not fit a ${size}-byte file (truncated or not safetensors)`, file);
    }
    const json = Buffer.alloc(headerLen);
    readSync(fd, json, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new SafetensorsError(`${file}: malformed header JSON (${(err as Error).message})`, file);
    }
    const base = 8 + headerLen;
    const entries: SafetensorsEntry[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const dtype = DTYPES[t.dtype ?? ''];
      if (!dtype || !t.shape || !t.data_offsets) throw new SafetensorsError(`${file}: tensor '${name}' has dtype ${t.dtype}, which is not supported or malformed`, file);
      const [start, end] = t.data_offsets;
      const expected = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype!]!;
      if (end - start !== expected) throw new SafetensorsError(`${file}: tensor '${name}' spans ${end - start} bytes, its shape needs ${expected}`, file);
      if (base + end > size) {
        throw new SafetensorsError(`${file} is truncated: tensor '${name}' ends at byte ${base + end}, the file has ${size}`, file);
      }
      entries.push({ name, file, dtype, shape: t.shape, offset: base + start, length: end - start });
    }
    return entries;
  } finally {
    closeSync(fd);
  }
};

/** All tensors of a model folder: model.safetensors, or the shards listed by model.safetensors.index.json. */
const toFloat32 = (bytes: Buffer, dtype: DType, count: number): Float32Array => {
  const out = new Float32Array(count);
  if (dtype === 'float32') {
    for (let i = 0; i < count; i++) out[i] = bytes.readFloatLE(4 * i);
  } else if (dtype === 'bfloat16') {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u32[i] = bytes.readUInt16LE(2 * i) << 16;
  } else if (dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes.readUInt16LE(2 * i));
  } else if (dtype === 'float64') {
    for (let i = 0; i < count; i++) out[i] = bytes.readDoubleLE(8 * i);
  } else {
    throw new Error(`cannot read ${dtype} as float32`);
  }
  return out;
};

export const halfToFloat = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
};

/** Reads one floating-point tensor's values as float32 (adapters, trainable state: small tensors). */
export const readTensorFloat32 = (e: SafetensorsEntry): Float32Array => {
  const fd = openSync(e.file, 'r');
  try {
    const bytes = Buffer.alloc(e.length);
    readSync(fd, bytes, 0, e.length, e.offset);
    return toFloat32(bytes, e.dtype, e.shape.reduce((a, b) => a * b, 1));
  } catch (err) {
    throw new SafetensorsError(`${e.file}: tensor '${e.name}': ${(err as Error).message}`, e.file);
  } finally {
    closeSync(fd);
  }
};

export interface TensorToWrite {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Writes float32 tensors as .safetensors (sorted keys, 8-byte aligned header), atomically: temp file + rename. */
export const writeSafetensors = (file: string, tensors: Readonly<Record<string, TensorToWrite>>, metadata: Readonly<Record<string, string>> = { format: 'pt' }): void => {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    if (t.shape.reduce((a, b) => a * b, 1) !== t.data.length) throw new SafetensorsError(`tensor '${name}': shape [${t.shape.join(', ')}] does not hold ${t.data.length} values`, file);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const body = names.map((n) => Buffer.from(tensors[n]!.data.buffer, tensors[n]!.data.byteOffset, tensors[n]!.data.byteLength));
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, Buffer.concat([len, Buffer.from(json), ...body]));
  renameSync(tmp, file);
};
