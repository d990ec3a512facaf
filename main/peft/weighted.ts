// Combining LoRA adapters into one, with PEFT's LoraModel.add_weighted_adapter semantics (tuners/lora/model.py,
// utils/merge_utils.py), including the fixes PEFT made after 0.17.1:
//   cat                       A = [w_i·s_i·A_i] (rows), B = [B_i] (columns), rank Σ r_i: exactly Σ w_i·s_i·B_i·A_i
//   svd (+ ties/dare/magnitude_prune _svd)   ΔW = combine(w_i, s_i·B_i·A_i), then B = U·S, A = Vᵀ truncated to
//                             svd_rank (s_i counted once: PEFT 0.17.1 counted it twice, fixed in PEFT #3111)
//   linear, ties, dare_linear, dare_ties, magnitude_prune   on A and on B separately with weights √(|w_i|·s_i)
//                             (the sign of w_i goes on A: negative weights, PEFT #2811/#2918)
//   dare_*: random masks with keep probability `density`, the kept values rescaled by 1/density (PEFT #3152; 0.17.1
//   discarded the rescale). The masks come from our seeded generator, not torch's.
// The result has r = lora_alpha = the new rank (scale 1) and use_rslora false (PEFT #3449).
import { matmul, matrix, qr, svd, transposed, type Matrix } from './linalg.ts';
import { createRng } from '../engine/random.ts';
import { PeftError } from './errors.ts';
import { loraKey } from './lora.ts';
import { deltaWeight, type LoraAdapterWeights, type LoraModule } from './merge.ts';
import type { TrainableTensor } from './method.ts';

export type CombinationType =
  | 'linear' | 'cat' | 'svd' | 'ties' | 'ties_svd' | 'dare_linear' | 'dare_ties' | 'dare_linear_svd' | 'dare_ties_svd'
  | 'magnitude_prune' | 'magnitude_prune_svd';
export type MajoritySignMethod = 'total' | 'frequency';

export interface WeightedOptions {
  /** PEFT's default is 'svd'. */
  readonly combinationType?: CombinationType;
  /** svd types: the new rank (default: the largest rank of the adapters). */
  readonly svdRank?: number;
  /** svd types: clamp U·S and Vᵀ to ± this quantile of their values. */
  readonly svdClamp?: number;
  /** ties, dare, magnitude_prune: the fraction of values kept, in [0, 1]. */
  readonly density?: number;
  readonly majoritySignMethod?: MajoritySignMethod;
  /** dare: seed of the random masks. */
  readonly seed?: number;
}

export interface CombinedAdapter {
  /** adapter_config.json of the new adapter. */
  readonly config: Record<string, unknown>;
  readonly modules: readonly LoraModule[];
}

// ---- merge_utils.py, on flat float32 task tensors of equal length ----

const f32 = Math.fround;

/** Keeps the k = ⌊density·n⌋ values of largest magnitude (ties: the earlier index). */
export const magnitudePrune = (t: Float32Array, density: number): Float32Array => {
  if (density >= 1) return t;
  const k = Math.trunc(density * t.length);
  const order = Array.from({ length: t.length }, (_, i) => i).sort((i, j) => Math.abs(t[j]!) - Math.abs(t[i]!) || i - j);
  const out = new Float32Array(t.length);
  for (let i = 0; i < k; i++) out[order[i]!] = t[order[i]!]!;
  return out;
};

/** DARE: keeps each value with probability `density` and divides the kept ones by it. */
export const randomPrune = (t: Float32Array, density: number, rng: () => number): Float32Array => {
  if (density >= 1) return t;
  const out = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) if (rng() < density) out[i] = t[i]! / density;
  return out;
};

const weightedSum = (tasks: readonly Float32Array[], weights: readonly number[]): Float32Array => {
  const out = new Float32Array(tasks[0]!.length);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    tasks.forEach((t, j) => (acc = f32(acc + f32(t[i]! * weights[j]!))));
    out[i] = acc;
  }
  return out;
};

/** TIES' sign election and disjoint mean: Σ_i w_i·t_i over the tasks whose sign agrees with the majority / their count. */
const electAndMerge = (tasks: readonly Float32Array[], weights: readonly number[], method: MajoritySignMethod): Float32Array => {
  const out = new Float32Array(tasks[0]!.length);
  for (let i = 0; i < out.length; i++) {
    let magnitude = 0;
    for (const t of tasks) magnitude = f32(magnitude + (method === 'total' ? t[i]! : Math.sign(t[i]!)));
    const majority = magnitude >= 0 ? 1 : -1;
    let acc = 0;
    let count = 0;
    tasks.forEach((t, j) => {
      if (Math.sign(t[i]!) !== majority) return;
      acc = f32(acc + f32(t[i]! * weights[j]!));
      count++;
    });
    out[i] = acc / Math.max(count, 1);
  }
  return out;
};

type Kind = 'linear' | 'ties' | 'dare_linear' | 'dare_ties' | 'magnitude_prune';

const combineTasks = (kind: Kind, tasks: readonly Float32Array[], w: readonly number[], o: WeightedOptions, rng: () => number): Float32Array => {
  const density = o.density!;
  const weights = w.map(f32); // PEFT holds them in a float32 tensor
  const method = o.majoritySignMethod ?? 'total';
  switch (kind) {
    case 'linear': return weightedSum(tasks, weights);
    case 'magnitude_prune': return weightedSum(tasks.map((t) => magnitudePrune(t, density)), weights);
    case 'ties': return electAndMerge(tasks.map((t) => magnitudePrune(t, density)), weights, method);
    case 'dare_linear': return weightedSum(tasks.map((t) => randomPrune(t, density, rng)), weights);
    case 'dare_ties': return electAndMerge(tasks.map((t) => randomPrune(t, density, rng)), weights, method);
  }
};

// ---- adapter-level combination ----

const adapterRank = (a: LoraAdapterWeights): number => Math.max(a.config.r, ...Object.values(a.config.rank_pattern));

const newTargets = (adapters: readonly LoraAdapterWeights[]): string | string[] => {
  const targets = adapters.map((a) => a.config.target_modules);
  if (targets.every((t) => typeof t === 'string')) return targets.map((t) => `(${t as string})`).join('|');
  if (targets.every((t) => Array.isArray(t))) return [...new Set(targets.flatMap((t) => t as string[]))].sort();
  throw new PeftError('all adapters must give target_modules the same way (all lists or all regex strings)');
};

/** ΔW = Σ over the valid adapters, then its truncated SVD: B = U·S (out, rank), A = Vᵀ (rank, in). */
const svdModule = (
  parts: readonly { m: LoraModule; w: number }[],
  kind: Kind,
  rank: number,
  o: WeightedOptions,
  rng: () => number,
): { a: Float32Array; b: Float32Array } => {
  const { outFeatures: out, inFeatures: n } = parts[0]!.m;
  if (rank > Math.min(out, n)) throw new PeftError(`svd rank ${rank} exceeds the size of '${parts[0]!.m.module}' (${out}×${n})`);
  let u: Matrix;
  let s: Float64Array;
  let vt: Matrix;
  if (kind === 'linear') {
    // Σ w_i·s_i·B_i·A_i = [B_i]·[w_i·s_i·A_i] has rank ≤ Σ r_i: QR both factors, SVD the small core.
    const R = parts.reduce((acc, p) => acc + p.m.r, 0);
    const bcat = matrix(out, R);
    const acatT = matrix(n, R);
    let col = 0;
    for (const { m, w } of parts) {
      for (let k = 0; k < m.r; k++, col++) {
        for (let i = 0; i < out; i++) bcat.data[i * R + col] = m.b[i * m.r + k]!;
        for (let i = 0; i < n; i++) acatT.data[i * R + col] = w * m.scale * m.a[k * n + i]!;
      }
    }
    const qb = qr(bcat);
    const qa = qr(acatT);
    const core = svd(matmul(qb.r, transposed(qa.r)));
    [u, s, vt] = [matmul(qb.q, core.u), core.s, transposed(matmul(qa.q, transposed(core.vt)))];
  } else {
    const deltas = parts.map((p) => deltaWeight(p.m));
    const combined = combineTasks(kind, deltas, parts.map((p) => p.w), o, rng);
    ({ u, s, vt } = svd(matrix(out, n, combined)));
  }
  const b = new Float32Array(out * rank);
  const a = new Float32Array(rank * n);
  const k = Math.min(rank, s.length);
  for (let i = 0; i < out; i++) for (let j = 0; j < k; j++) b[i * rank + j] = u.data[i * u.cols + j]! * s[j]!;
  for (let j = 0; j < k; j++) for (let i = 0; i < n; i++) a[j * n + i] = vt.data[j * vt.cols + i]!;
  if (o.svdClamp !== undefined) {
    const hi = quantile([...b, ...a], o.svdClamp);
    for (const t of [a, b]) for (let i = 0; i < t.length; i++) t[i] = Math.min(Math.max(t[i]!, -hi), hi);
  }
  return { a, b };
};

/** torch.quantile's default (linear interpolation between order statistics). */
const quantile = (values: number[], q: number): number => {
  if (!(q >= 0 && q <= 1)) throw new PeftError(`svd_clamp ${q} must be in [0, 1]`);
  const sorted = values.sort((x, y) => x - y);
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
};

/**
 * PEFT's add_weighted_adapter: one adapter from `adapters` weighted by `weights`. All must target modules the
 * same way; DoRA adapters and adapters that replace base tensors (biases, modules_to_save) cannot be combined.
 */
export const addWeightedAdapter = (adapters: readonly LoraAdapterWeights[], weights: readonly number[], o: WeightedOptions = {}): CombinedAdapter => {
  if (adapters.length === 0) throw new PeftError('add_weighted_adapter needs at least one adapter');
  if (weights.length !== adapters.length) throw new PeftError(`${adapters.length} adapters but ${weights.length} weights`);
  if (weights.some((w) => !Number.isFinite(w))) throw new PeftError(`weights must be finite numbers, got ${JSON.stringify(weights)}`);
  for (const a of adapters) {
    if (a.modules.some((m) => m.magnitude)) throw new PeftError(`${a.source}: DoRA adapters cannot be combined`);
    if (a.replaced.length) throw new PeftError(`${a.source}: adapters with trained base tensors (bias, modules_to_save: '${a.replaced[0]!.name}') cannot be combined`);
  }
  const type: CombinationType = adapters.length === 1 ? 'linear' : (o.combinationType ?? 'svd');
  const svdType = type.endsWith('svd');
  const kind = (svdType ? (type === 'svd' ? 'linear' : type.slice(0, -'_svd'.length)) : type) as Kind | 'cat';
  if (kind !== 'linear' && kind !== 'cat' && !(typeof o.density === 'number' && o.density >= 0)) {
    throw new PeftError(`combination_type '${type}' needs a density in [0, 1], got ${String(o.density)}`);
  }
  const ranks = adapters.map(adapterRank);
  let rank: number;
  if (type === 'cat') rank = ranks.reduce((a, b) => a + b, 0);
  else if (svdType) rank = o.svdRank ?? Math.max(...ranks);
  else if (new Set(ranks).size !== 1) throw new PeftError(`combination_type '${type}' needs adapters of one rank, got ${ranks.join(', ')}`);
  else rank = ranks[0]!;
  if (!(Number.isInteger(rank) && rank > 0)) throw new PeftError(`the new rank ${rank} must be a positive integer`);

  const rng = createRng(o.seed ?? 0);
  const names = [...new Set(adapters.flatMap((a) => a.modules.map((m) => m.module)))];
  const modules = names.map((name): LoraModule => {
    const parts = adapters.flatMap((a, i) => a.modules.filter((m) => m.module === name).map((m) => ({ m, w: weights[i]! })));
    const { inFeatures: n, outFeatures: out } = parts[0]!.m;
    if (parts.some((p) => p.m.inFeatures !== n || p.m.outFeatures !== out)) throw new PeftError(`'${name}' has different shapes in the adapters`);
    let a: Float32Array;
    let b: Float32Array;
    if (kind === 'cat') {
      a = new Float32Array(rank * n);
      b = new Float32Array(out * rank);
      let row = 0;
      for (const { m, w } of parts) {
        for (let i = 0; i < m.r * n; i++) a[row * n + i] = f32(f32(m.a[i]! * f32(w)) * f32(m.scale));
        for (let o2 = 0; o2 < out; o2++) for (let k = 0; k < m.r; k++) b[o2 * rank + row + k] = m.b[o2 * m.r + k]!;
        row += m.r;
      }
    } else if (svdType) {
      ({ a, b } = svdModule(parts, kind as Kind, rank, o, rng));
    } else {
      const r = parts[0]!.m.r;
      if (parts.some((p) => p.m.r !== r)) throw new PeftError(`'${name}' has different ranks in the adapters; combine with 'cat' or 'svd'`);
      const root = parts.map((p) => Math.sqrt(Math.abs(p.w) * p.m.scale));
      a = combineTasks(kind as Kind, parts.map((p) => p.m.a), root.map((x, i) => Math.sign(parts[i]!.w) * x), o, rng);
      b = combineTasks(kind as Kind, parts.map((p) => p.m.b), root, o, rng);
    }
    const r = a.length / n;
    return { module: name, r, alpha: r, scale: 1, inFeatures: n, outFeatures: out, a, b };
  });
  const config = {
    ...(adapters[0]!.config as unknown as Record<string, unknown>),
    r: rank,
    lora_alpha: rank,
    target_modules: newTargets(adapters),
    alpha_pattern: {},
    rank_pattern: {},
    use_rslora: false,
    use_dora: false,
  };
  return { config, modules };
};

/** The combined adapter's tensors under PEFT's keys, for saveAdapter. */
export const combinedAdapterParams = (c: CombinedAdapter, adapter = 'default'): TrainableTensor[] =>
  c.modules.flatMap((m) => [
    { name: loraKey(m.module, 'lora_A', adapter), shape: [m.r, m.inFeatures], data: m.a, module: m.module, role: 'lora_A' },
    { name: loraKey(m.module, 'lora_B', adapter), shape: [m.outFeatures, m.r], data: m.b, module: m.module, role: 'lora_B' },
  ]);
