// A checkpoint tensor's values, wherever the WeightStore keeps them (inline, a range of a .safetensors file, or
// 4-bit blocks), as float32 or as its stored bytes.
import { closeSync, openSync, readSync } from 'node:fs';
import { dtypeByteSize } from '../../engine/ir/index.ts';
import { halfToFloat } from '../../engine/io/safetensors.ts';
import type { WeightSource } from '../weights.ts';
import { ExportError } from './errors.ts';

const count = (src: WeightSource): number => src.shape.reduce((a, b) => a * b, 1);

/** The tensor's bytes in its stored dtype (not for 4-bit sources). */
export const weightBytes = (src: WeightSource, name: string): Uint8Array => {
  if (src.q4) throw new ExportError(`tensor '${name}' is kept in 4-bit blocks; it has no ${src.dtype} bytes`, undefined, name);
  const d = src.data;
  if (d.kind === 'inline') return new Uint8Array(d.data.buffer, d.data.byteOffset, d.data.byteLength);
  const out = new Uint8Array(d.length);
  const fd = openSync(d.file, 'r');
  try {
    let done = 0;
    while (done < d.length) {
      const got = readSync(fd, out, done, d.length - done, d.offset + done);
      if (got === 0) throw new ExportError(`${d.file}: tensor '${name}' is truncated`, d.file, name);
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return out;
};

/** Dequantizes 4-bit blocks: w = scale·(code − zero point) + min, per block. */
const q4Values = (src: WeightSource): Float32Array => {
  const q = src.q4!;
  const [n, k] = src.shape as [number, number];
  const blocks = k / q.blockSize;
  const perRow = Math.ceil(blocks / 2);
  const out = new Float32Array(n * k);
  for (let i = 0; i < n * k; i++) {
    const code = (q.packed[i >> 1]! >> ((i & 1) * 4)) & 0x0f;
    const block = Math.floor(i / q.blockSize);
    const row = Math.floor(block / blocks);
    const b = block % blocks;
    const zp = q.zeroPoints ? (q.zeroPoints[row * perRow + (b >> 1)]! >> ((b & 1) * 4)) & 0x0f : 8;
    out[i] = q.scales[block]! * (code - zp) + (q.mins ? q.mins[block]! : 0);
  }
  return out;
};

/** The tensor as float32 values (a copy for inline float32 data, so callers may change it). */
export const weightFloat32 = (src: WeightSource, name: string): Float32Array => {
  if (src.q4) return q4Values(src);
  const n = count(src);
  const bytes = weightBytes(src, name);
  if (bytes.byteLength !== n * dtypeByteSize(src.dtype)) {
    throw new ExportError(`tensor '${name}': ${bytes.byteLength} bytes do not hold ${n} ${src.dtype} values`, undefined, name);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (src.dtype) {
    case 'float32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'float16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'bfloat16': {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    default:
      throw new ExportError(`tensor '${name}' has dtype ${src.dtype}, not a float`, undefined, name);
  }
  return out;
};
