// int4 block quantization for MatMulNBits (blocks along K, per row), float32 arithmetic throughout:
// asymmetric: the block's range widened to hold 0, scale = (max − min)/15, a 4-bit zero point round(−min/scale);
// symmetric: scale = (the value of largest magnitude)/−8, zero point 8 (MatMulNBits' default, so none is stored).
// w ≈ (code − zero point)·scale; codes = clamp(round(w/scale) + zero point, 0, 15), rounding half to even.
import { roundHalfEven } from './blockwise.ts';

export interface Int4Blocks {
  /** One code (0..15) per weight, row-major (N, K). */
  readonly codes: Uint8Array;
  /** float32 (N·K/blockSize), row-major (N, K/blockSize). */
  readonly scales: Float32Array;
  /** One zero point (0..15) per block; absent for symmetric codes (8). */
  readonly zeroPoints?: Uint8Array;
  readonly blockSize: number;
}

const clamp4 = (v: number): number => Math.min(15, Math.max(0, v));

export const quantizeInt4 = (values: ArrayLike<number>, n: number, k: number, o: { readonly blockSize?: number; readonly symmetric?: boolean } = {}): Int4Blocks => {
  const bs = o.blockSize ?? 32;
  if (k % bs !== 0 || values.length !== n * k) throw new Error(`quantizeInt4: ${values.length} values do not fill ${n}×${k} in blocks of ${bs}`);
  const blocks = (n * k) / bs;
  const codes = new Uint8Array(n * k);
  const scales = new Float32Array(blocks);
  const zeroPoints = o.symmetric ? undefined : new Uint8Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * bs;
    let scale: number;
    let zp: number;
    if (zeroPoints) {
      let lo = 0;
      let hi = 0;
      for (let i = start; i < start + bs; i++) {
        lo = Math.min(lo, values[i]!);
        hi = Math.max(hi, values[i]!);
      }
      scale = Math.fround(Math.fround(hi - lo) / 15);
      zp = scale === 0 ? 8 : clamp4(roundHalfEven(Math.fround(-lo / scale)));
      zeroPoints[b] = zp;
    } else {
      let extreme = 0;
      for (let i = start; i < start + bs; i++) if (Math.abs(values[i]!) > Math.abs(extreme)) extreme = values[i]!;
      scale = Math.fround(extreme / -8);
      zp = 8;
    }
    scales[b] = scale;
    for (let i = start; i < start + bs; i++) codes[i] = scale === 0 ? zp : clamp4(roundHalfEven(Math.fround(values[i]! / scale)) + zp);
  }
  return { codes, scales, ...(zeroPoints ? { zeroPoints } : {}), blockSize: bs };
};

/** (code − zero point)·scale in float32, as MatMulNBits' dequantization (q4InputGrad) computes it. */
export const dequantizeInt4 = (q: Int4Blocks): Float32Array =>
  Float32Array.from(q.codes, (c, i) => {
    const b = Math.floor(i / q.blockSize);
    return (c - (q.zeroPoints ? q.zeroPoints[b]! : 8)) * q.scales[b]!;
  });
