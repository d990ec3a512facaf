// GGUF v3 writer, the mirror of reader.ts (ggml's docs/gguf.md, gguf-py's GGUFWriter):
//   "GGUF" | u32 3 | u64 n_tensors | u64 n_kv | kv… | tensor infos… | pad to alignment | data (each tensor padded)
// Metadata entries have the reader's shape ({ type, itemType?, value }), so a file's metadata can be written back
// as read. Tensor bytes are produced one tensor at a time while writing (big models never sit in memory whole),
// and the file lands atomically (temp + rename).
import { floatToHalf } from '../export/float16.ts';
import { writeFileAtomic } from '../export/atomic.ts';
import { ExportError } from '../export/errors.ts';
import type { GgufMetadataEntry, GgufValue } from './reader.ts';
import { GgmlType, GgufValueType, ggmlBlockLayout, ggmlTypeName } from './types.ts';

export interface GgufTensorSpec {
  readonly name: string;
  /** ggml order: dims[0] is the contiguous axis (an HF (out, in) weight is [in, out]). */
  readonly dims: readonly number[];
  readonly type: number;
  /** The tensor's bytes in `type`, produced when it is written. */
  readonly data: () => Uint8Array;
}

export interface GgufWriteOptions {
  readonly metadata: ReadonlyMap<string, GgufMetadataEntry>;
  readonly tensors: readonly GgufTensorSpec[];
}

const DEFAULT_ALIGNMENT = 32;

/** Metadata entries, typed as gguf-py writes them. */
export const ggufValue = {
  string: (value: string): GgufMetadataEntry => ({ type: GgufValueType.STRING, value }),
  u32: (value: number): GgufMetadataEntry => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufMetadataEntry => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufMetadataEntry => ({ type: GgufValueType.FLOAT32, value }),
  bool: (value: boolean): GgufMetadataEntry => ({ type: GgufValueType.BOOL, value }),
  u64: (value: number | bigint): GgufMetadataEntry => ({ type: GgufValueType.UINT64, value }),
  strings: (value: readonly string[]): GgufMetadataEntry => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value }),
  i32s: (value: readonly number[]): GgufMetadataEntry => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value }),
  u32s: (value: readonly number[]): GgufMetadataEntry => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.UINT32, value }),
  f32s: (value: readonly number[]): GgufMetadataEntry => ({ type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value }),
};

const WIDTH: Readonly<Record<number, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4, [GgufValueType.FLOAT64]: 8,
};

/** Grows a byte buffer for the header. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // Every write takes its offset first: room() may replace this.buf.
  u32(v: number): void {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
  }
  u64(v: number | bigint): void {
    const at = this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), at);
  }
  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.u64(n);
    const at = this.room(n);
    this.buf.write(s, at, 'utf8');
  }
  scalar(type: number, v: GgufValue, key: string): void {
    const bad = (): never => {
      throw new ExportError(`GGUF metadata '${key}': ${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))} is not a valid value of type ${type}`);
    };
    if (type === GgufValueType.STRING) return typeof v === 'string' ? this.string(v) : bad();
    if (type === GgufValueType.BOOL) {
      if (typeof v !== 'boolean') return bad();
      const at = this.room(1);
      this.buf.writeUInt8(v ? 1 : 0, at);
      return;
    }
    if (type === GgufValueType.UINT64 || type === GgufValueType.INT64) {
      if (typeof v !== 'number' && typeof v !== 'bigint') return bad();
      const at = this.room(8);
      if (type === GgufValueType.UINT64) this.buf.writeBigUInt64LE(BigInt(v), at);
      else this.buf.writeBigInt64LE(BigInt(v), at);
      return;
    }
    const width = WIDTH[type];
    if (typeof v !== 'number' || width === undefined) return bad();
    const at = this.room(width);
    const b = this.buf;
    switch (type) {
      case GgufValueType.UINT8: return void b.writeUInt8(v, at);
      case GgufValueType.INT8: return void b.writeInt8(v, at);
      case GgufValueType.UINT16: return void b.writeUInt16LE(v, at);
      case GgufValueType.INT16: return void b.writeInt16LE(v, at);
      case GgufValueType.UINT32: return void b.writeUInt32LE(v, at);
      case GgufValueType.INT32: return void b.writeInt32LE(v, at);
      case GgufValueType.FLOAT32: return void b.writeFloatLE(v, at);
      default: return void b.writeDoubleLE(v, at);
    }
  }
  entry(key: string, e: GgufMetadataEntry): void {
    this.string(key);
    this.u32(e.type);
    if (e.type !== GgufValueType.ARRAY) return this.scalar(e.type, e.value, key);
    const items = e.value;
    if (!Array.isArray(items) || e.itemType === undefined || e.itemType === GgufValueType.ARRAY) {
      throw new ExportError(`GGUF metadata '${key}': arrays need an item type (nested arrays are not written)`);
    }
    this.u32(e.itemType);
    this.u64(items.length);
    for (const item of items as readonly GgufValue[]) this.scalar(e.itemType, item, key);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** The size a tensor's data has in the file. */
export const ggufTensorBytes = (t: Pick<GgufTensorSpec, 'name' | 'dims' | 'type'>): number => {
  const layout = ggmlBlockLayout(t.type);
  if (!layout) throw new ExportError(`GGUF tensor '${t.name}': ggml type ${t.type} is unknown`, undefined, t.name);
  const n = t.dims.reduce((a, b) => a * b, 1);
  if ((t.dims[0] ?? 1) % layout.blockSize !== 0) {
    throw new ExportError(`GGUF tensor '${t.name}': row length ${t.dims[0]} is not a multiple of ${ggmlTypeName(t.type)}'s block size ${layout.blockSize}`, undefined, t.name);
  }
  return (n / layout.blockSize) * layout.typeSize;
};

/** Writes a GGUF v3 file at `path` (atomically). */
export const writeGguf = (path: string, o: GgufWriteOptions): void => {
  const alignEntry = o.metadata.get('general.alignment')?.value;
  const alignment = typeof alignEntry === 'number' ? alignEntry : DEFAULT_ALIGNMENT;
  const h = new Bytes();
  h.u32(0x46554747);
  h.u32(3);
  h.u64(o.tensors.length);
  h.u64(o.metadata.size);
  for (const [key, e] of o.metadata) h.entry(key, e);
  const sizes = o.tensors.map(ggufTensorBytes);
  const names = new Set<string>();
  let offset = 0;
  o.tensors.forEach((t, i) => {
    if (names.has(t.name)) throw new ExportError(`${path}: tensor '${t.name}' appears twice`, path, t.name);
    if (Buffer.byteLength(t.name) > 63) throw new ExportError(`${path}: tensor name '${t.name}' is longer than ggml's 63 bytes`, path, t.name);
    names.add(t.name);
    h.string(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(t.type);
    h.u64(offset);
    offset = alignUp(offset + sizes[i]!, alignment);
  });
  writeFileAtomic(path, (sink) => {
    const header = h.bytes();
    sink.write(header);
    sink.zeros(alignUp(header.length, alignment) - header.length);
    o.tensors.forEach((t, i) => {
      const bytes = t.data();
      if (bytes.byteLength !== sizes[i]) {
        throw new ExportError(`${path}: tensor '${t.name}' (${ggmlTypeName(t.type)} [${t.dims.join(', ')}]) needs ${sizes[i]} bytes, got ${bytes.byteLength}`, path, t.name);
      }
      sink.write(bytes);
      sink.zeros(alignUp(sizes[i]!, alignment) - sizes[i]!);
    });
  });
};

// ---- tensor encodings ----

/** Round half away from zero, as ggml's roundf and gguf-py's np_roundf. */
const roundf = (x: number): number => Math.sign(x) * Math.floor(Math.abs(x) + 0.5);

/** Q8_0 blocks of 32: f16 scale d = max|x|/127, int8 codes round(x/d); bit-exact with ggml's quantize_row_q8_0_ref. */
export const encodeQ8_0 = (values: ArrayLike<number>): Uint8Array => {
  if (values.length % 32 !== 0) throw new ExportError(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  const f = Math.fround;
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[b * 32 + j]!));
    const d = f(amax / 127);
    const id = d === 0 ? 0 : f(1 / d);
    view.setUint16(b * 34, floatToHalf(d), true);
    for (let j = 0; j < 32; j++) view.setInt8(b * 34 + 2 + j, roundf(f(values[b * 32 + j]! * id)));
  }
  return out;
};

/** Float values in an F32, F16 or Q8_0 tensor's bytes. */
export const encodeGgufTensor = (values: Float32Array, type: number, name = '<tensor>'): Uint8Array => {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case GgmlType.F16: {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case GgmlType.Q8_0:
      return encodeQ8_0(values);
    default:
      throw new ExportError(`tensor '${name}': writing ${ggmlTypeName(type)} is not supported (F32, F16, Q8_0)`, undefined, name);
  }
};
