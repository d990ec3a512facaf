import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { GgufError, GgufValueType, ggmlBlockLayout, ggmlTypeName } from './types.ts';

/**
 * GGUF v2/v3 reader (little-endian; the layout of ggml's docs/gguf.md):
 *   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv_count × (string key, u32 type, value)
 *   | tensor_count × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml_type, u64 offset)
 *   | padding to `general.alignment` | tensor data (each offset relative to here, aligned).
 * Strings are u64 length + UTF-8 bytes. Only the header is read at open; tensor bytes are read on demand with
 * positional reads, so a 7 GB file costs a few MB of memory until a tensor is asked for.
 */

/** u64/i64 values that do not fit a double exactly stay bigint; every other number is a number. */
export type GgufScalar = number | bigint | boolean | string;
export type GgufValue = GgufScalar | readonly GgufValue[];

export interface GgufMetadataEntry {
  /** GgufValueType of the value; for arrays, `itemType` is the element type (ARRAY again when nested). */
  readonly type: number;
  readonly itemType?: number;
  readonly value: GgufValue;
}

export interface GgufTensorInfo {
  readonly name: string;
  /** ggml order: dims[0] (ne[0]) is the innermost, contiguous axis. numpy/HF shape is this reversed. */
  readonly dims: readonly number[];
  readonly type: number;
  readonly typeName: string;
  /** Offset relative to the data section, as stored. */
  readonly offset: number;
  /** Offset from the start of the file. */
  readonly fileOffset: number;
  readonly nElements: number;
  /** undefined when the ggml type is unknown to this build (its size cannot be computed). */
  readonly byteLength: number | undefined;
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const CHUNK = 1 << 20;
const MAX_DIMS = 8; // ggml itself has 4; anything far beyond is a corrupt header, not a tensor

/** Buffered sequential reads over a file descriptor, for the header only. */
class HeaderCursor {
  pos = 0;
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  /** What is being read, for truncation messages. */
  where = 'the header';

  constructor(
    private readonly fd: number,
    private readonly path: string,
    readonly fileSize: number,
  ) {}

  private ensure(n: number): number {
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return rel;
    if (this.pos + n > this.fileSize) {
      throw new GgufError('truncated', this.path, `truncated file: it ends at byte ${this.fileSize} while reading ${this.where} (needs byte ${this.pos + n})`);
    }
    this.buf = Buffer.allocUnsafe(Math.max(n, CHUNK));
    const got = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
    this.buf = this.buf.subarray(0, got);
    this.bufStart = this.pos;
    return 0;
  }

  u32(): number {
    const at = this.ensure(4);
    this.pos += 4;
    return this.buf.readUInt32LE(at);
  }
  /**
   * A u64 that is a size, count or offset. No upper bound here: an offset beyond EOF is a truncated download
   * that must be reported by tensor name, and lengths are checked against EOF before anything is allocated.
   */
  size(): number {
    const v = this.u64();
    if (typeof v === 'bigint') {
      throw new GgufError('malformed', this.path, `malformed header: implausible size ${v} while reading ${this.where}`);
    }
    return v;
  }
  u64(): number | bigint {
    const at = this.ensure(8);
    this.pos += 8;
    const v = this.buf.readBigUInt64LE(at);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }
  string(): string {
    const len = this.size();
    const at = this.ensure(len);
    this.pos += len;
    return this.buf.toString('utf8', at, at + len);
  }

  scalar(type: number): GgufScalar {
    const width = SCALAR_WIDTH[type];
    if (type === GgufValueType.STRING) return this.string();
    if (width === undefined) {
      throw new GgufError('malformed', this.path, `malformed header: unknown metadata value type ${type} in ${this.where}`);
    }
    const at = this.ensure(width);
    this.pos += width;
    const b = this.buf;
    switch (type) {
      case GgufValueType.UINT8: return b.readUInt8(at);
      case GgufValueType.INT8: return b.readInt8(at);
      case GgufValueType.UINT16: return b.readUInt16LE(at);
      case GgufValueType.INT16: return b.readInt16LE(at);
      case GgufValueType.UINT32: return b.readUInt32LE(at);
      case GgufValueType.INT32: return b.readInt32LE(at);
      case GgufValueType.FLOAT32: return b.readFloatLE(at);
      case GgufValueType.BOOL: return b.readUInt8(at) !== 0;
      case GgufValueType.UINT64: return narrow(b.readBigUInt64LE(at));
      case GgufValueType.INT64: return narrow(b.readBigInt64LE(at));
      default: return b.readDoubleLE(at); // FLOAT64
    }
  }

  /** A value of `type`; arrays are (u32 item type, u64 count, items), and items may be arrays again. */
  value(type: number): { value: GgufValue; itemType?: number } {
    if (type !== GgufValueType.ARRAY) return { value: this.scalar(type) };
    const itemType = this.u32();
    const count = this.size();
    // A corrupt count must not make us allocate gigabytes: every item takes at least one byte.
    const minItem = SCALAR_WIDTH[itemType] ?? (itemType === GgufValueType.STRING ? 8 : 12);
    if (this.pos + count * minItem > this.fileSize) {
      throw new GgufError('truncated', this.path, `truncated file: array of ${count} items in ${this.where} runs past the end (${this.fileSize} bytes)`);
    }
    const items: GgufValue[] = new Array<GgufValue>(count);
    for (let i = 0; i < count; i++) items[i] = this.value(itemType).value;
    return { value: items, itemType };
  }
}

const SCALAR_WIDTH: Readonly<Record<number, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

const narrow = (v: bigint): number | bigint =>
  v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;

/** An opened GGUF file: its header in memory, its tensor data still on disk. */
export class GgufFile {
  private readonly byName: ReadonlyMap<string, GgufTensorInfo>;

  constructor(
    readonly path: string,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufMetadataEntry>,
    readonly tensors: readonly GgufTensorInfo[],
    readonly alignment: number,
    /** Where the data section starts (after the header, padded to `alignment`). */
    readonly dataOffset: number,
    readonly fileSize: number,
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  get architecture(): string | undefined {
    const v = this.metadata.get('general.architecture')?.value;
    return typeof v === 'string' ? v : undefined;
  }

  tensor(name: string): GgufTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** A tensor that must exist. */
  requireTensor(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new GgufError('missing-tensor', this.path, `has no tensor '${name}'`, name);
    return t;
  }

  value(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  string(key: string): string | undefined {
    const v = this.value(key);
    return typeof v === 'string' ? v : undefined;
  }

  /** Numeric metadata as a number (bigints beyond 2^53 are converted with loss; no real key needs that). */
  number(key: string): number | undefined {
    const v = this.value(key);
    return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
  }

  bool(key: string): boolean | undefined {
    const v = this.value(key);
    return typeof v === 'boolean' ? v : undefined;
  }

  array(key: string): readonly GgufValue[] | undefined {
    const v = this.value(key);
    return Array.isArray(v) ? (v as readonly GgufValue[]) : undefined;
  }

  /**
   * The raw bytes of a tensor, read positionally (the file is opened for this read only). The buffer owns its
   * memory from byte 0, so typed-array views over it are aligned.
   */
  readTensorBytes(t: GgufTensorInfo): Buffer {
    if (t.byteLength === undefined) {
      throw new GgufError('unknown-type', this.path, `tensor '${t.name}' has unknown ggml type ${t.type}; its size cannot be computed`, t.name);
    }
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (t.fileOffset + t.byteLength > size) throw truncatedTensor(this.path, t, size);
      const out = Buffer.allocUnsafeSlow(t.byteLength);
      let done = 0;
      while (done < t.byteLength) {
        const got = readSync(fd, out, done, t.byteLength - done, t.fileOffset + done);
        if (got === 0) throw truncatedTensor(this.path, t, t.fileOffset + done);
        done += got;
      }
      return out;
    } finally {
      closeSync(fd);
    }
  }
}

const truncatedTensor = (path: string, t: GgufTensorInfo, size: number): GgufError =>
  new GgufError(
    'truncated',
    path,
    `truncated file: tensor '${t.name}' (${t.typeName}, ${t.byteLength} bytes at ${t.fileOffset}) runs past the end of the file (${size} bytes)`,
    t.name,
  );

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Reads a GGUF file's header: metadata, tensor infos, data section start. Tensor data stays on disk. */
export const openGguf = (path: string): GgufFile => {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new GgufError('malformed', path, `cannot open: ${(err as Error).message}`);
  }
  try {
    const fileSize = fstatSync(fd).size;
    const c = new HeaderCursor(fd, path, fileSize);
    if (fileSize < 8) throw new GgufError('bad-magic', path, `not a GGUF file: only ${fileSize} bytes`);
    const magic = c.u32();
    if (magic !== MAGIC) {
      throw new GgufError('bad-magic', path, `not a GGUF file: bad magic 0x${magic.toString(16).padStart(8, '0')} (expected the bytes "GGUF")`);
    }
    const version = c.u32();
    // A big-endian file (gguf-py's --bigendian) reads as 0x02000000 / 0x03000000 here.
    if ((version & 0xffff) === 0 && (version >>> 24 === 2 || version >>> 24 === 3)) {
      throw new GgufError('big-endian', path, `big-endian GGUF v${version >>> 24} is not supported (little-endian only)`);
    }
    if (version !== 2 && version !== 3) {
      throw new GgufError('unsupported-version', path, `unsupported GGUF version ${version} (v2 and v3 are supported)`);
    }
    c.where = 'the tensor count';
    const tensorCount = c.size();
    c.where = 'the metadata count';
    const kvCount = c.size();

    const metadata = new Map<string, GgufMetadataEntry>();
    for (let i = 0; i < kvCount; i++) {
      c.where = `metadata entry #${i}`;
      const key = c.string();
      c.where = `metadata '${key}'`;
      const type = c.u32();
      const { value, itemType } = c.value(type);
      metadata.set(key, itemType === undefined ? { type, value } : { type, itemType, value });
    }

    const alignEntry = metadata.get('general.alignment')?.value;
    const alignment = typeof alignEntry === 'number' ? alignEntry : DEFAULT_ALIGNMENT;
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new GgufError('malformed', path, `general.alignment is ${String(alignEntry)}; it must be a power of two`);
    }

    const raw: Omit<GgufTensorInfo, 'fileOffset'>[] = [];
    for (let i = 0; i < tensorCount; i++) {
      c.where = `tensor info #${i}`;
      const name = c.string();
      c.where = `tensor info '${name}'`;
      const nDims = c.u32();
      if (nDims > MAX_DIMS) throw new GgufError('malformed', path, `tensor '${name}' claims ${nDims} dimensions`, name);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.size());
      const type = c.u32();
      const offset = c.size();
      const nElements = dims.reduce((a, b) => a * b, 1);
      const layout = ggmlBlockLayout(type);
      if (layout && (dims[0] ?? 1) % layout.blockSize !== 0) {
        throw new GgufError('malformed', path, `tensor '${name}' (${ggmlTypeName(type)}): row length ${dims[0]} is not a multiple of its block size ${layout.blockSize}`, name);
      }
      const byteLength = layout ? (nElements / layout.blockSize) * layout.typeSize : undefined;
      raw.push({ name, dims, type, typeName: ggmlTypeName(type), offset, nElements, byteLength });
    }

    const dataOffset = alignUp(c.pos, alignment);
    const tensors = raw.map((t) => ({ ...t, fileOffset: dataOffset + t.offset }));
    // A cut-off download is the common failure: name the first tensor whose bytes are not all there.
    const short = tensors
      .filter((t) => t.byteLength !== undefined && t.fileOffset + t.byteLength > fileSize)
      .sort((a, b) => a.fileOffset - b.fileOffset)[0];
    if (short) throw truncatedTensor(path, short, fileSize);
    return new GgufFile(path, version, metadata, tensors, alignment, dataOffset, fileSize);
  } finally {
    closeSync(fd);
  }
};
