// float32 arithmetic shared by the block quantizers, written to round exactly as torch/numpy float32 do (every
// JS double result of one float32 op, rounded once with Math.fround, is the correctly rounded float32 result).

/** fround(1 / max(absmax, 1e-38)), bitsandbytes' guard against all-zero blocks. */
export const reciprocalClamped = (absmax: number): number => Math.fround(1 / Math.fround(Math.max(absmax, Math.fround(1e-38))));

/**
 * torch.bucketize(x, midpoints) for a sorted float32 code: the number of midpoints strictly below x, where
 * midpoint i = (code[i] + code[i+1]) / 2 in float32. That is the nearest code, a tie going to the lower one.
 */
export const bucketizer = (code: Float32Array): ((x: number) => number) => {
  const mid = Float32Array.from({ length: code.length - 1 }, (_, i) => Math.fround(code[i]! + code[i + 1]!) / 2);
  return (x: number): number => {
    let lo = 0;
    let hi = mid.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (mid[m]! < x) lo = m + 1;
      else hi = m;
    }
    return lo;
  };
};

/** Round half to even (numpy's rint, torch.round). */
export const roundHalfEven = (v: number): number => {
  const f = Math.floor(v);
  const d = v - f;
  return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
};

/** float32 mean as the sequential float64 sum over n, rounded once (torch's float32 mean depends on its SIMD width). */
export const meanFloat32 = (values: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return Math.fround(s / values.length);
};
