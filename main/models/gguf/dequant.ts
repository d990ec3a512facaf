import type { GgufFile, GgufTensorInfo } from './reader.ts';
import { GgmlType, GgufError, ggmlBlockLayout, ggmlTypeName } from './types.ts';

/**
 * ggml block formats → float32, bit-exact with gguf-py's `gguf.quants.dequantize` (itself matching
 * ggml-quants.c). Exactness argument: every block value is an fp16 scale times small integers, so the products
 * are exact in double; where numpy rounds to float32 once (a final add/subtract), the exact double result
 * rounded by the Float32Array store is the same correctly rounded float32. No intermediate is ever rounded
 * differently, so there is no tolerance anywhere.
 *
 * Layouts (QK = 32 elements per block for the legacy types, QK_K = 256 for the K-quants; fp16 is little-endian):
 *   Q8_0  d:f16, q:i8[32]                                   x = d·q
 *   Q4_0  d:f16, qs:u8[16]                                  x = d·(q − 8)
 *   Q4_1  d:f16, m:f16, qs:u8[16]                           x = d·q + m
 *   Q5_0  d:f16, qh:u32, qs:u8[16]                          x = d·(q − 16), bit 4 of element j = bit j of qh
 *   Q5_1  d:f16, m:f16, qh:u32, qs:u8[16]                   x = d·q + m
 *   (4-bit packing of the legacy types: element j < 16 is the low nibble of qs[j], element j + 16 its high nibble)
 *   Q4_K  d, dmin:f16, scales:u8[12], qs:u8[128]            8 sub-blocks of 32: x = d·sc_s·q − dmin·m_s
 *   Q5_K  d, dmin:f16, scales:u8[12], qh:u8[32], qs:u8[128] as Q4_K, bit 4 of element i of sub-block s = bit s of qh[i]
 *   Q6_K  ql:u8[128], qh:u8[64], scales:i8[16], d:f16       16 sub-blocks of 16: x = d·sc·(q − 32)
 */

/** f32 bit patterns of all 65536 fp16 values (NaN payloads kept, as numpy's float16→float32 does). */
const F16_BITS = new Uint32Array(65536);
const F16 = new Float32Array(F16_BITS.buffer);
for (let h = 0; h < 65536; h++) {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  let bits: number;
  if (exp === 0x1f) bits = sign | 0x7f800000 | (mant << 13);
  else if (exp !== 0) bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (mant === 0) bits = sign;
  else {
    // Subnormal half: renormalize, since every fp16 subnormal is a normal float32.
    let e = 113;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    bits = sign | (e << 23) | ((mant & 0x3ff) << 13);
  }
  F16_BITS[h] = bits >>> 0;
}

/** The fp16 at byte `o` of `b`, as a number. */
export const readF16 = (b: Uint8Array, o: number): number => F16[b[o]! | (b[o + 1]! << 8)]!;

const SUPPORTED = [
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q8_0,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q5_0,
  GgmlType.Q5_1,
  GgmlType.Q4_K,
  GgmlType.Q5_K,
  GgmlType.Q6_K,
] as readonly number[];

export const canDequantize = (type: number): boolean => SUPPORTED.includes(type);

/** Names the file and tensor: what the user needs to know when a model uses a format we cannot read. */
const unsupported = (type: number, file: string, tensor: string): GgufError => {
  const known = ggmlBlockLayout(type) !== undefined;
  return known
    ? new GgufError(
        'unsupported-type',
        file,
        `tensor '${tensor}' is ${ggmlTypeName(type)} (ggml type ${type}), which cannot be dequantized yet; supported: ${SUPPORTED.map(ggmlTypeName).join(', ')}`,
        tensor,
      )
    : new GgufError('unknown-type', file, `tensor '${tensor}' has unknown ggml type ${type}`, tensor);
};

/**
 * Dequantizes `nElements` values of ggml `type` from `bytes`, in storage order (row-major with the ggml dims
 * reversed, i.e. already the numpy/HF memory layout). `file`/`tensor` only name the culprit in errors.
 */
export const dequantizeBytes = (type: number, bytes: Uint8Array, nElements: number, file = '<memory>', tensor = '<bytes>'): Float32Array => {
  const layout = ggmlBlockLayout(type);
  if (!layout || !canDequantize(type)) throw unsupported(type, file, tensor);
  const nBlocks = nElements / layout.blockSize;
  if (!Number.isInteger(nBlocks) || bytes.length < nBlocks * layout.typeSize) {
    throw new GgufError('malformed', file, `tensor '${tensor}': ${bytes.length} bytes cannot hold ${nElements} ${ggmlTypeName(type)} values`, tensor);
  }
  const out = new Float32Array(nElements);
  switch (type) {
    case GgmlType.F32:
      // Copy the bit patterns rather than the numbers so NaN payloads survive unchanged.
      new Uint8Array(out.buffer).set(bytes.subarray(0, nElements * 4));
      break;
    case GgmlType.F16: {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < nElements; i++) bits[i] = F16_BITS[bytes[2 * i]! | (bytes[2 * i + 1]! << 8)]!;
      break;
    }
    case GgmlType.BF16: {
      // bf16 is the top half of a float32.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < nElements; i++) bits[i] = ((bytes[2 * i]! << 16) | (bytes[2 * i + 1]! << 24)) >>> 0;
      break;
    }
    case GgmlType.Q8_0:
      for (let b = 0; b < nBlocks; b++) {
        const o = b * 34;
        const d = readF16(bytes, o);
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * ((bytes[o + 2 + j]! << 24) >> 24);
      }
      break;
    case GgmlType.Q4_0:
    case GgmlType.Q4_1:
    case GgmlType.Q5_0:
    case GgmlType.Q5_1:
      dequantLegacy(type, bytes, nBlocks, layout.typeSize, out);
      break;
    case GgmlType.Q4_K:
    case GgmlType.Q5_K:
      dequantQ45K(type === GgmlType.Q5_K, bytes, nBlocks, layout.typeSize, out);
      break;
    case GgmlType.Q6_K:
      dequantQ6K(bytes, nBlocks, out);
      break;
  }
  return out;
};

/** Q4_0, Q4_1, Q5_0, Q5_1: one fp16 scale (plus an fp16 min for the _1 types) per 32 elements. */
const dequantLegacy = (type: number, bytes: Uint8Array, nBlocks: number, typeSize: number, out: Float32Array): void => {
  const hasMin = type === GgmlType.Q4_1 || type === GgmlType.Q5_1;
  const fiveBit = type === GgmlType.Q5_0 || type === GgmlType.Q5_1;
  // Symmetric types store q + 8 (4-bit) or q + 16 (5-bit) so that codes are unsigned.
  const offset = hasMin ? 0 : fiveBit ? 16 : 8;
  for (let b = 0; b < nBlocks; b++) {
    let o = b * typeSize;
    const d = readF16(bytes, o);
    o += 2;
    const m = hasMin ? readF16(bytes, o) : 0;
    if (hasMin) o += 2;
    let qh = 0;
    if (fiveBit) {
      qh = (bytes[o]! | (bytes[o + 1]! << 8) | (bytes[o + 2]! << 16) | (bytes[o + 3]! << 24)) >>> 0;
      o += 4;
    }
    const base = b * 32;
    for (let j = 0; j < 16; j++) {
      const byte = bytes[o + j]!;
      let lo = byte & 0x0f;
      let hi = byte >>> 4;
      if (fiveBit) {
        lo |= ((qh >>> j) & 1) << 4;
        hi |= ((qh >>> (j + 16)) & 1) << 4;
      }
      // No "+ 0" for the symmetric types: it would turn numpy's −0 results into +0.
      out[base + j] = hasMin ? d * lo + m : d * (lo - offset);
      out[base + j + 16] = hasMin ? d * hi + m : d * (hi - offset);
    }
  }
};

/**
 * The 6-bit scales and mins of the 8 sub-blocks of a Q4_K/Q5_K block, packed in 12 bytes: sub-blocks 0–3 use
 * the low 6 bits of bytes 0–3 (scale) and 4–7 (min); sub-blocks 4–7 take their low 4 bits from the nibbles of
 * bytes 8–11 and their top 2 bits from the spare top bits of bytes 0–7.
 */
const kScaleMin = (b: Uint8Array, o: number, s: number): [number, number] => {
  if (s < 4) return [b[o + s]! & 63, b[o + s + 4]! & 63];
  const packed = b[o + s + 4]!;
  return [(packed & 0x0f) | ((b[o + s - 4]! >>> 6) << 4), (packed >>> 4) | ((b[o + s]! >>> 6) << 4)];
};

/** Q4_K / Q5_K: 256 values as 8 sub-blocks of 32, each with a 6-bit scale and min over two fp16 super-scales. */
const dequantQ45K = (five: boolean, bytes: Uint8Array, nBlocks: number, typeSize: number, out: Float32Array): void => {
  for (let b = 0; b < nBlocks; b++) {
    const o = b * typeSize;
    const d = readF16(bytes, o);
    const dmin = readF16(bytes, o + 2);
    const scalesAt = o + 4;
    const qhAt = o + 16; // Q5_K only: 32 bytes of fifth bits
    const qsAt = five ? o + 48 : o + 16;
    for (let s = 0; s < 8; s++) {
      const [sc, mn] = kScaleMin(bytes, scalesAt, s);
      const scale = d * sc;
      const min = dmin * mn;
      // Sub-blocks 2c and 2c+1 share qs[32c .. 32c+31]: low nibbles, then high nibbles.
      const qs = qsAt + (s >>> 1) * 32;
      const shift = (s & 1) * 4;
      const base = b * 256 + s * 32;
      for (let i = 0; i < 32; i++) {
        let q = (bytes[qs + i]! >>> shift) & 0x0f;
        if (five) q |= ((bytes[qhAt + i]! >>> s) & 1) << 4;
        out[base + i] = scale * q - min;
      }
    }
  }
};

/** Q6_K: 256 values, low 4 bits in ql, high 2 bits in qh, an int8 scale per 16 values, one fp16 super-scale. */
const dequantQ6K = (bytes: Uint8Array, nBlocks: number, out: Float32Array): void => {
  for (let b = 0; b < nBlocks; b++) {
    const o = b * 210;
    const d = readF16(bytes, o + 208);
    // Two halves of 128 values; within a half, value r takes ql[64h + r%64] (low nibble for r < 64, else high)
    // and the 2 bits at position 2·(r/32) of qh[32h + r%32].
    for (let h = 0; h < 2; h++) {
      const ql = o + h * 64;
      const qh = o + 128 + h * 32;
      for (let r = 0; r < 128; r++) {
        const lo = (bytes[ql + (r & 63)]! >>> ((r >>> 6) * 4)) & 0x0f;
        const hi = (bytes[qh + (r & 31)]! >>> ((r >>> 5) * 2)) & 0x03;
        const e = h * 128 + r;
        const sc = (bytes[o + 192 + (e >>> 4)]! << 24) >> 24;
        out[b * 256 + e] = d * sc * ((lo | (hi << 4)) - 32);
      }
    }
  }
};

/** Reads and dequantizes one tensor of an opened GGUF file (storage order; shape = tensor.dims reversed). */
export const dequantizeTensor = (file: GgufFile, tensor: GgufTensorInfo): Float32Array => {
  if (!canDequantize(tensor.type)) throw unsupported(tensor.type, file.path, tensor.name);
  return dequantizeBytes(tensor.type, file.readTensorBytes(tensor), tensor.nElements, file.path, tensor.name);
};

/**
 * A Q4_0/Q4_1 tensor kept in its blocks (for QLoRA: the frozen base stays 4-bit). Block b covers elements
 * 32b .. 32b+31 in storage order (blocks never straddle rows: a row's length is a multiple of 32).
 *   Q4_0: x = scales[b] · (codes[i] − 8)          (zeroPoint 8, as MatMulNBits' default)
 *   Q4_1: x = scales[b] · codes[i] + mins[b]
 */
export interface Q4Blocks {
  readonly type: 'Q4_0' | 'Q4_1';
  readonly blockSize: 32;
  readonly scales: Float32Array;
  /** Q4_1 only. */
  readonly mins?: Float32Array;
  /** Q4_0 only: the code that means zero. */
  readonly zeroPoint?: 8;
  /** One code 0..15 per element, unpacked, in storage order. */
  readonly codes: Uint8Array;
}

export const q4BlocksFromBytes = (type: number, bytes: Uint8Array, nElements: number, file = '<memory>', tensor = '<bytes>'): Q4Blocks => {
  if (type !== GgmlType.Q4_0 && type !== GgmlType.Q4_1) {
    throw new GgufError('unsupported-type', file, `tensor '${tensor}' is ${ggmlTypeName(type)}, not Q4_0/Q4_1: it has no 4-bit blocks to keep`, tensor);
  }
  const hasMin = type === GgmlType.Q4_1;
  const typeSize = hasMin ? 20 : 18;
  const nBlocks = nElements / 32;
  if (!Number.isInteger(nBlocks) || bytes.length < nBlocks * typeSize) {
    throw new GgufError('malformed', file, `tensor '${tensor}': ${bytes.length} bytes cannot hold ${nElements} ${ggmlTypeName(type)} values`, tensor);
  }
  const scales = new Float32Array(nBlocks);
  const mins = hasMin ? new Float32Array(nBlocks) : undefined;
  const codes = new Uint8Array(nElements);
  for (let b = 0; b < nBlocks; b++) {
    const o = b * typeSize;
    scales[b] = readF16(bytes, o);
    if (mins) mins[b] = readF16(bytes, o + 2);
    const qs = o + (hasMin ? 4 : 2);
    for (let j = 0; j < 16; j++) {
      const byte = bytes[qs + j]!;
      codes[b * 32 + j] = byte & 0x0f;
      codes[b * 32 + j + 16] = byte >>> 4;
    }
  }
  return hasMin ? { type: 'Q4_1', blockSize: 32, scales, mins: mins!, codes } : { type: 'Q4_0', blockSize: 32, scales, zeroPoint: 8, codes };
};

/** The 4-bit blocks of a Q4_0/Q4_1 tensor of an opened GGUF file. */
export const q4Blocks = (file: GgufFile, tensor: GgufTensorInfo): Q4Blocks =>
  q4BlocksFromBytes(tensor.type, file.readTensorBytes(tensor), tensor.nElements, file.path, tensor.name);
