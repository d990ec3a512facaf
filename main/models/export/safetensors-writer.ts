// A streaming .safetensors writer: the header is planned from shapes and dtypes, then each tensor's bytes are
// produced and written one at a time, so a model larger than memory can be exported. F32, F16 and BF16.
import { encodeBf16, encodeFloat32, encodeHalf } from './float16.ts';
import { ExportError } from './errors.ts';
import { writeFileAtomic } from './atomic.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const BYTES: Readonly<Record<SafetensorsDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export interface SafetensorsTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: SafetensorsDtype;
  /** Values to encode in `dtype`, or bytes already in it (copied through untouched). Called once, when written. */
  readonly data: () => Float32Array | Uint8Array;
}

export const tensorBytes = (t: Pick<SafetensorsTensor, 'shape' | 'dtype'>): number => t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];

const encode = (values: Float32Array, dtype: SafetensorsDtype): Uint8Array =>
  dtype === 'F32' ? encodeFloat32(values) : dtype === 'F16' ? encodeHalf(values) : encodeBf16(values);

/** Writes the tensors (in the given order; the header lists them sorted, as safetensors does) to `file`, atomically. */
export const writeSafetensorsFile = (file: string, tensors: readonly SafetensorsTensor[], metadata: Readonly<Record<string, string>> = { format: 'pt' }): void => {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new ExportError(`${file}: tensor '${t.name}' appears twice`, file, t.name);
    seen.add(t.name);
    const n = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const sorted = Object.fromEntries(Object.entries(header).sort(([a], [b]) => (a === '__metadata__' ? -1 : b === '__metadata__' ? 1 : a < b ? -1 : 1)));
  let json = JSON.stringify(sorted);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  writeFileAtomic(file, (sink) => {
    sink.write(len);
    sink.write(Buffer.from(json));
    for (const t of tensors) {
      const data = t.data();
      const bytes = data instanceof Float32Array ? encode(data, t.dtype) : data;
      if (bytes.byteLength !== tensorBytes(t)) {
        throw new ExportError(`${file}: tensor '${t.name}' [${t.shape.join(', ')}] ${t.dtype} needs ${tensorBytes(t)} bytes, got ${bytes.byteLength}`, file, t.name);
      }
      sink.write(bytes);
    }
  });
};
