import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { NF4_CODE } from '../../../main/engine/ir/index.ts';
import { DYNAMIC_MAP, dequantizeAbsmax, quantizeAbsmax } from '../../../main/engine/quant/double-quant.ts';
import { dequantizeInt4, quantizeInt4 } from '../../../main/engine/quant/int4.ts';
import { dequantizeNf4, quantizeNf4 } from '../../../main/engine/quant/nf4.ts';
import { describeOracle, runOracle } from '../../helpers/oracle.ts';
import { seededRandom } from '../../helpers/random.ts';

interface Case {
  readonly name: string;
  readonly n: number;
  readonly k: number;
  readonly nf4_block: number;
  readonly int4_block?: number;
  readonly bnb?: boolean;
}
interface BnbCheck {
  readonly packed_equal: boolean;
  readonly absmax_equal: boolean;
  readonly dequant_equal: boolean;
  readonly dq_packed_equal: boolean;
  readonly dq_offset_ulps: number;
  readonly dq_map_equal: boolean;
  readonly dq_absmax2_equal: boolean;
  readonly dq_codes_differing: number;
  readonly dq_codes_count: number;
  readonly dq_dequant_max_rel: number;
}
interface Reference {
  readonly cases: Record<string, { readonly parts: Record<string, string>; readonly offset: number; readonly bnb?: BnbCheck | null }>;
  readonly dynamic_map: string;
}

const CASES: readonly Case[] = [
  { name: 'edges', n: 16, k: 32, nf4_block: 64, int4_block: 32 },
  { name: 'rows', n: 96, k: 64, nf4_block: 64, int4_block: 32, bnb: true },
  { name: 'many-blocks', n: 256, k: 320, nf4_block: 64, int4_block: 32, bnb: true },
  { name: 'ragged', n: 5, k: 25, nf4_block: 64 },
];

/** Gaussian-ish weights, plus blocks that probe the rules: an all-zero block, values exactly on NF4 midpoints (ties). */
const weights = (c: Case, seed: number): Float32Array => {
  const rnd = seededRandom(seed);
  const w = Float32Array.from({ length: c.n * c.k }, () => (rnd() + rnd() + rnd() - 1.5) * 0.05);
  if (c.name === 'edges') {
    w.fill(0, 64, 128);
    const mids = Array.from({ length: 15 }, (_, i) => Math.fround(NF4_CODE[i]! + NF4_CODE[i + 1]!) / 2);
    w.set([1, -1, ...mids, ...mids.map((m) => -m), 0, -0, 0.5, -0.5], 128);
    w.set([3, -3, 0.75, 1.5, -2.25], 256); // int4 ties: values landing on .5 steps of their block's scale
  }
  return w;
};

const read = (dir: string, file: string, dtype: string): Float32Array | Uint8Array => {
  const buf = readFileSync(join(dir, file));
  const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return dtype === 'uint8' ? bytes : new Float32Array(bytes.buffer);
};

const bitsEqual = (got: ArrayLike<number>, want: ArrayLike<number>, what: string): void => {
  expect(got.length, what).toBe(want.length);
  const a = new Uint32Array(Float32Array.from(got).buffer);
  const b = new Uint32Array(Float32Array.from(want).buffer);
  const first = a.findIndex((v, i) => v !== b[i]);
  expect(first, `${what}: first difference at ${first} (${got[first]} vs ${want[first]})`).toBe(-1);
};

describeOracle('4-bit quantizers are bit-exact against the Python reference (and bitsandbytes)', () => {
  const input = mkdtempSync(join(tmpdir(), 'qlora-quant-in-'));
  const out = mkdtempSync(join(tmpdir(), 'qlora-quant-out-'));
  const data = new Map(CASES.map((c, i) => [c.name, weights(c, 100 + i)]));
  for (const [name, w] of data) writeFileSync(join(input, `${name}.f32`), w);
  writeFileSync(join(input, 'cases.json'), JSON.stringify(CASES.map((c) => ({ ...c, file: `${c.name}.f32` }))));
  let ref: Reference | undefined;
  const reference = (): Reference => (ref ??= runOracle<Reference>('qlora_quant_ref.py', [input, out]));

  it('the stored dynamic map is bitsandbytes’ create_dynamic_map(signed=True)', () => {
    bitsEqual(DYNAMIC_MAP, read(out, reference().dynamic_map, 'float32'), 'dynamic map');
  });

  for (const c of CASES) {
    it(`${c.name} (${c.n}×${c.k}): NF4 codes, absmax, double-quantized absmax, int4 codes and every dequantized value`, () => {
      const r = reference().cases[c.name]!;
      const part = (p: string) => read(out, `${c.name}.${p}.bin`, r.parts[p]!);
      const w = data.get(c.name)!;
      const q = quantizeNf4(w, c.nf4_block);
      expect(q.packed).toEqual(part('packed'));
      bitsEqual(q.absmax, part('absmax'), 'absmax');
      bitsEqual(dequantizeNf4(q), part('dequant'), 'NF4 dequantized');

      const dq = quantizeAbsmax(q.absmax);
      expect(dq.codes.subarray(0, dq.count)).toEqual(part('dq_codes'));
      bitsEqual(dq.absmax2, part('absmax2'), 'second-level absmax');
      bitsEqual([dq.offset], [r.offset], 'offset');
      const absmax = dequantizeAbsmax(dq);
      bitsEqual(absmax, part('dq_absmax'), 'double-quantized absmax');
      bitsEqual(dequantizeNf4(q, absmax), part('dq_dequant'), 'NF4 dequantized through double-quantized absmax');

      if (c.int4_block) {
        for (const tag of ['asym', 'sym'] as const) {
          const iq = quantizeInt4(w, c.n, c.k, { blockSize: c.int4_block, symmetric: tag === 'sym' });
          expect(iq.codes, `int4 ${tag} codes`).toEqual(part(`int4_${tag}_codes`));
          bitsEqual(iq.scales, part(`int4_${tag}_scales`), `int4 ${tag} scales`);
          if (tag === 'asym') expect(iq.zeroPoints).toEqual(part('int4_asym_zero_points'));
          bitsEqual(dequantizeInt4(iq), part(`int4_${tag}_dequant`), `int4 ${tag} dequantized`);
        }
      }

      const bnb = r.bnb;
      if (c.bnb && bnb === null) console.warn('bitsandbytes not installed in the oracle venv: compared with the reference only');
      if (c.bnb && bnb) {
        // bitsandbytes' own NF4 quantize_4bit (CPU) and dequantize_4bit: identical.
        expect([bnb.packed_equal, bnb.absmax_equal, bnb.dequant_equal, bnb.dq_packed_equal]).toEqual([true, true, true, true]);
        expect(bnb.dq_map_equal).toBe(true);
        // Its offset is torch's float32 mean (SIMD-order summation) and its native 8-bit CPU quantizer searches the
        // map approximately: allow an ulp and a few codes one step apart, and bound the effect on the weights.
        expect(bnb.dq_offset_ulps).toBeLessThanOrEqual(1);
        if (bnb.dq_offset_ulps === 0) expect(bnb.dq_absmax2_equal).toBe(true);
        expect(bnb.dq_codes_differing).toBeLessThanOrEqual(Math.ceil(0.01 * bnb.dq_codes_count));
        expect(bnb.dq_dequant_max_rel).toBeLessThan(1e-3);
      }
    });
  }
});
