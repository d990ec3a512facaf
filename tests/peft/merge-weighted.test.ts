import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorFloat32 } from '../../main/engine/io/safetensors.ts';
import { createRng } from '../../main/engine/random.ts';
import { deltaWeight, loraAdapterWeights, type LoraAdapterWeights, type LoraModule } from '../../main/peft/merge.ts';
import { loadAdapterFiles } from '../../main/peft/peft-io.ts';
import { addWeightedAdapter, randomPrune, type WeightedOptions } from '../../main/peft/weighted.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { oraclePython, runOracle } from '../helpers/oracle.ts';

const QV = ['q_proj', 'v_proj'];
const ADAPTERS: Record<string, Record<string, unknown>> = {
  a1: { r: 4, lora_alpha: 8, target_modules: QV },
  a2: { r: 4, lora_alpha: 16, target_modules: QV },
  a3: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'k_proj'] },
  // scale 1: PEFT 0.17.1 applies the LoRA scale twice in its svd path (fixed in PEFT #3111); with s = 1 both agree.
  s1: { r: 4, lora_alpha: 4, target_modules: QV },
  s2: { r: 4, lora_alpha: 4, target_modules: QV },
  s3: { r: 2, lora_alpha: 2, target_modules: ['q_proj', 'k_proj'] },
};
interface Case {
  readonly adapters: string[];
  readonly weights: number[];
  readonly combination_type: string;
  readonly density?: number;
  readonly svd_rank?: number;
  readonly majority_sign_method?: 'total' | 'frequency';
}
/** Deterministic combinations, compared with PEFT: A and B themselves, or B·A where an SVD's signs are free. */
const CASES: Record<string, Case> = {
  linear: { adapters: ['a1', 'a2'], weights: [0.7, 0.3], combination_type: 'linear' },
  cat: { adapters: ['a1', 'a3'], weights: [0.7, 0.5], combination_type: 'cat' },
  svd: { adapters: ['s1', 's3'], weights: [0.7, -0.4], combination_type: 'svd', svd_rank: 3 },
  ties: { adapters: ['a1', 'a2'], weights: [0.7, 0.3], combination_type: 'ties', density: 0.5 },
  'ties-frequency': { adapters: ['a1', 'a2'], weights: [0.6, 0.4], combination_type: 'ties', density: 0.7, majority_sign_method: 'frequency' },
  magnitude_prune: { adapters: ['a1', 'a2'], weights: [0.7, 0.3], combination_type: 'magnitude_prune', density: 0.5 },
  'dare_linear-density-1': { adapters: ['a1', 'a2'], weights: [0.7, 0.3], combination_type: 'dare_linear', density: 1 },
  'dare_ties-density-1': { adapters: ['a1', 'a2'], weights: [0.7, 0.3], combination_type: 'dare_ties', density: 1 },
  ties_svd: { adapters: ['s1', 's2'], weights: [0.7, 0.3], combination_type: 'ties_svd', density: 0.5, svd_rank: 2 },
};

const modelDir = tinyModelDir('llama3');
const ready = modelDir !== undefined && oraclePython() !== undefined;
if (!ready) console.warn('ORACLE MISSING: add_weighted_adapter oracle tests skipped (run tests/oracle/setup.sh and make_tiny_models.py)');

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const options = (c: Case): WeightedOptions => ({
  combinationType: c.combination_type as WeightedOptions['combinationType'],
  ...(c.density !== undefined ? { density: c.density } : {}),
  ...(c.svd_rank !== undefined ? { svdRank: c.svd_rank } : {}),
  ...(c.majority_sign_method ? { majoritySignMethod: c.majority_sign_method } : {}),
});

describe.skipIf(!ready && !oracleRequired())('add_weighted_adapter equals PEFT', () => {
  let ref: Record<string, { config: Record<string, unknown>; file: string }>;
  const adapters: Record<string, LoraAdapterWeights> = {};
  beforeAll(() => {
    const out = mkdtempSync(join(tmpdir(), 'peft-weighted-'));
    ref = runOracle('peft_merge_weighted.py', [modelDir!, out, JSON.stringify({ adapters: ADAPTERS, cases: CASES })]);
    for (const name of Object.keys(ADAPTERS)) adapters[name] = loraAdapterWeights(loadAdapterFiles(join(out, 'adapters', name)));
  }, 120_000);

  for (const [name, c] of Object.entries(CASES)) {
    it(name, () => {
      const combined = addWeightedAdapter(c.adapters.map((a) => adapters[a]!), c.weights, options(c));
      const want = ref[name]!;
      for (const k of ['r', 'lora_alpha', 'target_modules']) expect(combined.config[k], k).toEqual(want.config[k]);
      const theirs = new Map(readSafetensorsHeader(want.file).map((e) => [e.name, { shape: e.shape, data: readTensorFloat32(e) }]));
      expect(combined.modules.map((m) => m.module).sort()).toEqual([...new Set([...theirs.keys()].map((k) => k.replace(/\.lora_[AB]$/, '')))].sort());
      for (const m of combined.modules) {
        const a = theirs.get(`${m.module}.lora_A`)!;
        const b = theirs.get(`${m.module}.lora_B`)!;
        expect([m.r, m.inFeatures]).toEqual(a.shape);
        expect([m.outFeatures, m.r]).toEqual(b.shape);
        if (c.combination_type.endsWith('svd')) {
          const ref = { ...m, a: a.data, b: b.data, scale: 1 } satisfies LoraModule;
          const want = deltaWeight(ref);
          expect(maxDiff(deltaWeight(m), want), m.module).toBeLessThanOrEqual(2e-5 * maxAbs(want));
        } else {
          expect(maxDiff(m.a, a.data), `${m.module} A`).toBeLessThanOrEqual(1e-6 * maxAbs(a.data));
          expect(maxDiff(m.b, b.data), `${m.module} B`).toBeLessThanOrEqual(1e-6 * maxAbs(b.data));
        }
      }
    });
  }

  it('cat is exactly Σ wᵢ·sᵢ·Bᵢ·Aᵢ and svd its best rank-k approximation; the result has scale 1 and no rsLoRA', () => {
    const [a1, a3] = [adapters.a1!, adapters.a3!];
    const cat = addWeightedAdapter([a1, a3], [0.7, -0.5], { combinationType: 'cat' });
    expect(cat.config).toMatchObject({ r: 6, lora_alpha: 6, use_rslora: false });
    for (const m of cat.modules) {
      const expected = new Float32Array(m.outFeatures * m.inFeatures);
      for (const [a, w] of [[a1, 0.7], [a3, -0.5]] as const) {
        const src = a.modules.find((x) => x.module === m.module);
        if (src) deltaWeight(src).forEach((v, i) => (expected[i]! += w * v));
      }
      expect(maxDiff(deltaWeight(m), expected), m.module).toBeLessThanOrEqual(1e-6 * maxAbs(expected));
    }
    // A single adapter with a negative weight: linear gives −s·B·A (the sign goes on A).
    const neg = addWeightedAdapter([a1], [-1], { combinationType: 'ties', density: 0.5 });
    for (const m of neg.modules) {
      const src = deltaWeight(a1.modules.find((x) => x.module === m.module)!);
      expect(maxDiff(deltaWeight(m), src.map((v) => -v)), m.module).toBeLessThanOrEqual(1e-6 * maxAbs(src));
    }
  });

  it('dare: masks keep a `density` share rescaled by 1/density, so the combination is unbiased (statistics over seeds)', () => {
    const [a1, a2] = [adapters.a1!, adapters.a2!];
    const density = 0.4;
    const linear = addWeightedAdapter([a1, a2], [0.7, 0.3], { combinationType: 'linear' });
    const runs = 400;
    const sums = linear.modules.map((m) => ({ a: new Float64Array(m.a.length), sq: new Float64Array(m.a.length) }));
    let zeros = 0;
    let total = 0;
    for (let seed = 0; seed < runs; seed++) {
      const dare = addWeightedAdapter([a1, a2], [0.7, 0.3], { combinationType: 'dare_linear', density, seed });
      dare.modules.forEach((m, j) =>
        m.a.forEach((v, i) => {
          sums[j]!.a[i]! += v;
          sums[j]!.sq[i]! += v * v;
        }),
      );
      const ties = addWeightedAdapter([a1, a2], [0.7, 0.3], { combinationType: 'dare_ties', density, seed });
      for (const m of ties.modules) {
        zeros += m.a.filter((v) => v === 0).length;
        total += m.a.length;
      }
    }
    linear.modules.forEach((m, j) => {
      m.a.forEach((want, i) => {
        const mean = sums[j]!.a[i]! / runs;
        const sd = Math.sqrt(Math.max(sums[j]!.sq[i]! / runs - mean * mean, 1e-12));
        expect(Math.abs(mean - want), `${m.module} A[${i}]`).toBeLessThanOrEqual(5 * (sd / Math.sqrt(runs)) + 1e-6);
      });
    });
    // dare_ties: an output is zero only when every task dropped it: (1 − d)² of them.
    const expected = (1 - density) ** 2;
    expect(Math.abs(zeros / total - expected)).toBeLessThanOrEqual(5 * Math.sqrt((expected * (1 - expected)) / total));
  });
});

describe('DARE random pruning', () => {
  it('keeps about `density` of the values, each divided by density; density 1 keeps the tensor', () => {
    const t = Float32Array.from({ length: 100_000 }, (_, i) => Math.sin(i) + 0.1);
    const pruned = randomPrune(t, 0.3, createRng(5));
    let kept = 0;
    pruned.forEach((v, i) => {
      if (v === 0) return;
      kept++;
      expect(Math.abs(v - t[i]! / 0.3)).toBeLessThanOrEqual(1e-6 * Math.abs(v));
    });
    const sd = Math.sqrt((0.3 * 0.7) / t.length);
    expect(Math.abs(kept / t.length - 0.3)).toBeLessThanOrEqual(5 * sd);
    const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
    // Unbiased: E[Σ pruned] = Σ t, with variance Σ t²·(1 − d)/d.
    const sdSum = Math.sqrt(t.reduce((s, v) => s + v * v, 0) * (0.7 / 0.3));
    expect(Math.abs(sum(pruned) - sum(t))).toBeLessThanOrEqual(5 * sdSum);
    expect(randomPrune(t, 1, createRng(5))).toBe(t);
  });
});
