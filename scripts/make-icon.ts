// `npx tsx scripts/make-icon.ts`: draws resources/icon.png (512×512, from which electron-builder derives the .ico and
// .icns): a rounded indigo square holding a frozen weight block W with its LoRA factors beside and below it (B tall
// and thin, A short and wide). Drawn in code so the icon is reproducible without an image editor.
import { writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const SIZE = 512;
/** Samples per pixel side: edges are anti-aliased by averaging SS×SS coverage samples. */
const SS = 4;

type Rgb = readonly [number, number, number];
interface Shape {
  readonly color: Rgb;
  inside(x: number, y: number): boolean;
}

const roundedRect = (x0: number, y0: number, x1: number, y1: number, r: number, color: Rgb): Shape => ({
  color,
  inside: (x, y) => {
    if (x < x0 || x > x1 || y < y0 || y > y1) return false;
    const cx = Math.min(Math.max(x, x0 + r), x1 - r);
    const cy = Math.min(Math.max(y, y0 + r), y1 - r);
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
  },
});

const BACKGROUND = roundedRect(16, 16, 496, 496, 96, [67, 56, 202]);
const SHAPES: readonly Shape[] = [
  // The frozen weight W.
  roundedRect(108, 108, 332, 332, 28, [224, 231, 255]),
  // Its low-rank update: B (tall and thin) beside it, A (short and wide) below it.
  roundedRect(364, 108, 404, 332, 14, [251, 191, 36]),
  roundedRect(108, 364, 332, 404, 14, [251, 191, 36]),
];

const pixels = (): Uint8Array => {
  const rgba = new Uint8Array(SIZE * SIZE * 4);
  for (let py = 0; py < SIZE; py++) {
    for (let px = 0; px < SIZE; px++) {
      let r = 0, g = 0, b = 0, a = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const x = px + (sx + 0.5) / SS;
          const y = py + (sy + 0.5) / SS;
          if (!BACKGROUND.inside(x, y)) continue;
          const color = [...SHAPES].reverse().find((s) => s.inside(x, y))?.color ?? BACKGROUND.color;
          r += color[0]; g += color[1]; b += color[2]; a += 1;
        }
      }
      const i = (py * SIZE + px) * 4;
      if (a > 0) {
        rgba[i] = Math.round(r / a);
        rgba[i + 1] = Math.round(g / a);
        rgba[i + 2] = Math.round(b / a);
      }
      rgba[i + 3] = Math.round((a / (SS * SS)) * 255);
    }
  }
  return rgba;
};

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (bytes: Uint8Array): number => {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};

const chunk = (type: string, data: Uint8Array): Buffer => {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const out = Buffer.alloc(body.length + 8);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE(crc32(body), body.length + 4);
  return out;
};

/** An 8-bit RGBA PNG, each row with filter type 0. */
export const encodePng = (rgba: Uint8Array, width: number, height: number): Buffer => {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 6, 0, 0, 0], 8);
  const raw = Buffer.alloc(height * (width * 4 + 1));
  for (let y = 0; y < height; y++) raw.set(rgba.subarray(y * width * 4, (y + 1) * width * 4), y * (width * 4 + 1) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array()),
  ]);
};

const out = new URL('../resources/icon.png', import.meta.url);
writeFileSync(out, encodePng(pixels(), SIZE, SIZE));
console.log(`wrote ${out.pathname}`);
