// float32 → float16 / bfloat16 with round-to-nearest-even, bit for bit what numpy's astype(float16) and torch's
// .to(bfloat16) give (Node 20 has no Float16Array).
const scratch = new Float32Array(1);
const bits = new Uint32Array(scratch.buffer);

/** IEEE half bits of `v` (overflow → ±inf, NaN stays NaN, subnormals rounded to nearest even). */
export const floatToHalf = (v: number): number => {
  scratch[0] = v;
  const x = bits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry into the exponent is the right result, inf included
  return sign | half;
};

/** bfloat16 bits of `v` (the top half of the float32, rounded to nearest even). */
export const floatToBf16 = (v: number): number => {
  scratch[0] = v;
  const x = bits[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
};

/** Little-endian float16 bytes of `values`. */
export const encodeHalf = (values: ArrayLike<number>): Uint8Array => {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]!);
  return new Uint8Array(out.buffer);
};

/** Little-endian bfloat16 bytes of `values`. */
export const encodeBf16 = (values: ArrayLike<number>): Uint8Array => {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = floatToBf16(values[i]!);
  return new Uint8Array(out.buffer);
};

/** Little-endian float32 bytes (a view when `values` already is a Float32Array). */
export const encodeFloat32 = (values: ArrayLike<number>): Uint8Array => {
  const f = values instanceof Float32Array ? values : Float32Array.from(values);
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
};
