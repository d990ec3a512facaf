// NF4 block quantization exactly as bitsandbytes quantizes on the CPU (backends/default quantize_4bit): per block
// of the flattened weight, absmax = max|w|, w·(1/absmax) clamped to [−1, 1] in float32, the nearest NF4 value by
// torch.bucketize against the float32 midpoints (a tie goes to the lower code), two codes per byte, high first.
import { NF4_CODE } from '../ir/index.ts';
import { bucketizer, reciprocalClamped } from './blockwise.ts';

export interface Nf4Blocks {
  /** ⌈n/2⌉ bytes: element 2i in the high nibble, 2i+1 in the low one. */
  readonly packed: Uint8Array;
  /** One float32 absmax per block (the last block may be partial). */
  readonly absmax: Float32Array;
  readonly blockSize: number;
  readonly count: number;
}

const nf4Code = bucketizer(NF4_CODE);

/** One code (0..15) per value: the block-quantized NF4 codes before packing. */
export const nf4Codes = (values: ArrayLike<number>, blockSize = 64): { codes: Uint8Array; absmax: Float32Array } => {
  const n = values.length;
  const blocks = Math.ceil(n / blockSize);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(n, start + blockSize);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(values[i]!));
    absmax[b] = m;
    // bitsandbytes multiplies full blocks by the reciprocal and divides the partial last block.
    const full = end - start === blockSize;
    const r = reciprocalClamped(m);
    const clamped = Math.fround(Math.max(m, 1e-38));
    for (let i = start; i < end; i++) {
      const scaled = full ? Math.fround(values[i]! * r) : Math.fround(values[i]! / clamped);
      codes[i] = nf4Code(Math.min(1, Math.max(-1, scaled)));
    }
  }
  return { codes, absmax };
};

/** Packs codes two per byte, high nibble first; an odd count is padded with the code of 0.0 as bitsandbytes does. */
export const packHighFirst = (codes: Uint8Array, pad = nf4Code(0)): Uint8Array => {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < out.length; i++) out[i] = ((codes[2 * i]! & 0x0f) << 4) | ((codes[2 * i + 1] ?? pad) & 0x0f);
  return out;
};

export const quantizeNf4 = (values: ArrayLike<number>, blockSize = 64): Nf4Blocks => {
  const { codes, absmax } = nf4Codes(values, blockSize);
  return { packed: packHighFirst(codes), absmax, blockSize, count: values.length };
};

/** NF4[code]·absmax in float32, as MatMulBnb4 and bitsandbytes' dequantize_4bit compute it. */
export const dequantizeNf4 = (q: Nf4Blocks, absmax: ArrayLike<number> = q.absmax): Float32Array => {
  const out = new Float32Array(q.count);
  for (let i = 0; i < q.count; i++) {
    const byte = q.packed[i >> 1]!;
    out[i] = NF4_CODE[i & 1 ? byte & 0x0f : byte >> 4]! * absmax[Math.floor(i / q.blockSize)]!;
  }
  return out;
};
