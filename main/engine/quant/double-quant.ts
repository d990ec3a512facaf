// Double quantization of NF4 absmax scales (QLoRA §3, bitsandbytes' compress_statistics): subtract their mean
// (the offset), then quantize blockwise (256) to 8-bit codes of bitsandbytes' signed dynamic map, each second-level
// block keeping a float32 absmax. Dequantized: DYNAMIC_MAP[code]·absmax2 + offset, in float32.
import { bucketizer, meanFloat32, reciprocalClamped } from './blockwise.ts';

/**
 * bitsandbytes' create_dynamic_map(signed=True) as float32. Stored, not computed: torch.linspace (which builds it)
 * rounds differently with the CPU's SIMD width, so only the table itself is portable.
 */
export const DYNAMIC_MAP: Float32Array = new Float32Array(
  Uint8Array.from(
    atob(
      'MzN+v5qZer8AAHe/ZmZzv83Mb78zM2y/mplovwAAZb9mZmG/zcxdvzMzWr+amVa/AABTv2ZmT7/NzEu/MzNIv5qZRL8AAEG/ZmY9v83MOb80Mza/mpkyvwAAL79mZiu/zcwnvzQzJL+amSC/AAAdv2ZmGb/NzBW/NDMSv5qZDr8AAAu/ZmYHv8zMA78zMwC/MjP5vgAA8r7MzOq+mpnjvmZm3L4zM9W+AADOvszMxr6amb++Zma4vjMzsb4AAKq+zMyivpqZm75mZpS+NDONvgAAhr6ZmX2+MzNvvs3MYL5mZlK+AABEvpqZNb4zMye+zcwYvmZmCr4AAPi9NDPbvYXryb33KMS9Z2a+vdejuL1I4bK9uB6tvSpcp72amaG9CtebvXsUlr3rUZC9XY+Kvc3MhL17FH69XY9yvT0KZ70fhVu9AABQveF6RL3D9Ti9o3AtvYXrIb1nZha9SOEKvVK4/rwVrue816PQvJqZubxdj6K8H4WLvMP1aLxI4Tq8ZDsfvBgEFrzNzAy8gZUDvGq89LvTTeK7O9/Pu6RwvbsNAqu7dJOYu90khruKbGe7XI9Cuy2yHbv8qfG6ne+nuv9ld7o+6Fm6gGo8usHsHroBbwG6g+LHuQXnjLkL1yO5Sx+6uLPvirg0gDe4BkKyt/8FAreUGlq2t6MTtQAAAAC3oxM1lBpaNv8FAjcGQrI3NIA3OLPvijhLH7o4C9cjOQXnjDmD4sc5AW8BOsHsHjqAajw6PuhZOv9ldzqd76c6/KnxOi2yHTtcj0I7imxnO90khjt0k5g7DQKrO6RwvTs73887003iO2q89DuBlQM8zcwMPBgEFjxkOx88SOE6PMP1aDwfhYs8XY+iPJqZuTzXo9A8Fa7nPFK4/jxI4Qo9Z2YWPYXrIT2jcC09w/U4PeF6RD0AAFA9H4VbPT0KZz1dj3I9exR+Pc3MhD1dj4o961GQPXsUlj0K15s9mpmhPSpcpz24Hq09SOGyPdejuD1nZr499yjEPYXryT00M9s9AAD4PWZmCj7NzBg+MzMnPpqZNT4AAEQ+ZmZSPs3MYD4zM28+mZl9PgAAhj40M40+ZmaUPpqZmz7MzKI+AACqPjMzsT5mZrg+mpm/PszMxj4AAM4+MzPVPmZm3D6ameM+zMzqPgAA8j4yM/k+MzMAP8zMAz9mZgc/AAALP5qZDj80MxI/zcwVP2ZmGT8AAB0/mpkgPzQzJD/NzCc/ZmYrPwAALz+amTI/NDM2P83MOT9mZj0/AABBP5qZRD8zM0g/zcxLP2ZmTz8AAFM/mplWPzMzWj/NzF0/ZmZhPwAAZT+amWg/MzNsP83Mbz9mZnM/AAB3P5qZej8zM34/AACAPw==',
    ),
    (c) => c.charCodeAt(0),
  ).buffer,
);

/** bitsandbytes' second-level block size for absmax scales. */
export const ABSMAX_BLOCK = 256;

export interface QuantizedAbsmax {
  /** One 8-bit code per absmax, padded with zeros to whole blocks of 256 (the graph reshapes them so). */
  readonly codes: Uint8Array;
  /** float32 absmax of each block of 256 (absmax − offset) values. */
  readonly absmax2: Float32Array;
  /** float32 mean of the absmax values. */
  readonly offset: number;
  /** How many absmax values the codes stand for. */
  readonly count: number;
}

const dynamicCode = bucketizer(DYNAMIC_MAP);

export const quantizeAbsmax = (absmax: Float32Array): QuantizedAbsmax => {
  const count = absmax.length;
  const offset = meanFloat32(absmax);
  const blocks = Math.ceil(count / ABSMAX_BLOCK);
  const codes = new Uint8Array(blocks * ABSMAX_BLOCK);
  const absmax2 = new Float32Array(blocks);
  const centred = Float32Array.from(absmax, (a) => a - offset);
  for (let b = 0; b < blocks; b++) {
    const start = b * ABSMAX_BLOCK;
    const end = Math.min(count, start + ABSMAX_BLOCK);
    let m = 0;
    for (let i = start; i < end; i++) m = Math.max(m, Math.abs(centred[i]!));
    absmax2[b] = m;
    const full = end - start === ABSMAX_BLOCK;
    const r = reciprocalClamped(m);
    const clamped = Math.fround(Math.max(m, 1e-38));
    for (let i = start; i < end; i++) {
      const scaled = full ? Math.fround(centred[i]! * r) : Math.fround(centred[i]! / clamped);
      codes[i] = dynamicCode(Math.min(1, Math.max(-1, scaled)));
    }
  }
  return { codes, absmax2, offset, count };
};

/** DYNAMIC_MAP[code]·absmax2 + offset in float32, as bitsandbytes' dequantize_blockwise then `absmax += offset`. */
export const dequantizeAbsmax = (q: QuantizedAbsmax): Float32Array =>
  Float32Array.from({ length: q.count }, (_, i) => Math.fround(Math.fround(DYNAMIC_MAP[q.codes[i]!]! * q.absmax2[Math.floor(i / ABSMAX_BLOCK)]!) + q.offset));
