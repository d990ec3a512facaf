/** mulberry32: a small seeded generator of uniforms in [0, 1); the same seed gives the same stream. */
export const createRng = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

export const uniformArray = (n: number, bound: number, rng: () => number): Float32Array =>
  Float32Array.from({ length: n }, () => (rng() * 2 - 1) * bound);

/** Standard normals by Box–Muller, scaled by `std`. */
export const normalArray = (n: number, std: number, rng: () => number): Float32Array => {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
};
