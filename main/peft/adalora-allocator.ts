// AdaLoRA's rank allocator (PEFT's RankAllocator + AdaLoraModel.update_and_allocate) in JS on the trainer's
// Float32Arrays. Importance of each entry is |p·∇p|, smoothed by an EMA (beta1, sensitivity) times an EMA of its
// deviation (beta2, uncertainty); a singular triplet (E_i, row i of A, column i of B) scores
// s(E_i) + mean_j s(A_ij) + mean_j s(B_ji). The budget (total kept triplets) stays at Σ init ranks for tinit
// steps, falls cubically to target_r × #modules until total_step − tfinal, then stays; every deltaT steps the
// lowest-scoring triplets' E are set to zero. At total_step − tfinal the final mask is fixed and re-applied at
// every later step. Arithmetic is float32 per operation, as torch does it, so rankings match PEFT's.
import type { AdaLoraConfig, RankPattern } from './adalora.ts';
import { normalizeRankPattern, rankPatternKey } from './adalora.ts';
import { PeftError } from './errors.ts';
import type { TrainableTensor } from './method.ts';

const f = Math.fround;

interface Triplet {
  readonly module: string;
  readonly a: string;
  readonly b: string;
  readonly e: string;
  readonly r: number;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

export type AllocationPhase = 'warmup' | 'allocate' | 'final' | 'fixed';

export interface AllocationResult {
  readonly step: number;
  readonly phase: AllocationPhase;
  /** Kept triplets over all modules at this step (PEFT's budget_schedule). */
  readonly budget: number;
  /** The pattern computed at this step (keys `<module>.lora_E`), when a mask was computed. */
  readonly rankPattern?: RankPattern;
  /** True when rankPattern differs from the previous one: what adapter_config.json should now carry. */
  readonly changed: boolean;
}

/** The allocator's state for checkpoints: EMA tensors by parameter name, and the current pattern. */
export interface AllocatorState {
  readonly expAvgIpt: Readonly<Record<string, Float32Array>>;
  readonly expAvgUnc: Readonly<Record<string, Float32Array>>;
  readonly rankPattern: RankPattern | null;
}

export interface AllocatorOptions {
  readonly adapterName?: string;
}

/**
 * Call `update(step, params, grads)` once per optimizer step, AFTER the optimizer has updated the parameters
 * (PEFT: `optimizer.step(); model.base_model.update_and_allocate(global_step)`), with that step's gradients.
 * It masks lora_E in `params` in place.
 */
export class AdaLoraAllocator {
  readonly initBudget: number;
  readonly targetBudget: number;
  private readonly triplets: readonly Triplet[];
  private expAvgIpt = new Map<string, Float32Array>();
  private expAvgUnc = new Map<string, Float32Array>();
  private pattern: Record<string, boolean[]> | null;

  constructor(
    private readonly config: AdaLoraConfig,
    params: readonly TrainableTensor[],
    o: AllocatorOptions = {},
  ) {
    const byModule = new Map<string, Partial<Record<string, TrainableTensor>>>();
    for (const p of params) byModule.set(p.module, { ...byModule.get(p.module), [p.role]: p });
    this.triplets = [...byModule].map(([module, t]) => {
      const { lora_A: a, lora_B: b, lora_E: e } = t;
      if (!a || !b || !e) throw new PeftError(`AdaLoRA module '${module}' lacks one of lora_A, lora_B, lora_E`);
      return { module, a: a.name, b: b.name, e: e.name, r: a.shape[0]!, inFeatures: a.shape[1]!, outFeatures: b.shape[0]! };
    });
    this.initBudget = this.triplets.reduce((s, t) => s + t.r, 0);
    this.targetBudget = config.target_r * this.triplets.length;
    if (this.targetBudget > this.initBudget) {
      throw new PeftError(`target_r=${config.target_r} × ${this.triplets.length} modules exceeds the ${this.initBudget} triplets there are`);
    }
    this.pattern = normalizeRankPattern(config.rank_pattern, o.adapterName ?? 'default');
  }

  /** The current rank pattern (what adapter_config.json's rank_pattern should hold), or null before any allocation. */
  get rankPattern(): RankPattern | null {
    return this.pattern;
  }

  /** Kept rank per module under the current pattern. */
  ranks(): Map<string, number> {
    return new Map(this.triplets.map((t) => [t.module, this.pattern?.[rankPatternKey(t.module)]?.filter(Boolean).length ?? t.r]));
  }

  /** PEFT's budget_schedule: the budget at `step` and whether this step masks. */
  budgetSchedule(step: number): { budget: number; mask: boolean } {
    const { tinit, tfinal, total_step: total, deltaT } = this.config;
    if (step <= tinit) return { budget: this.initBudget, mask: false };
    if (step > total - tfinal) return { budget: this.targetBudget, mask: true };
    const c = 1 - (step - tinit) / (total - tfinal - tinit);
    return { budget: Math.trunc((this.initBudget - this.targetBudget) * c ** 3 + this.targetBudget), mask: step % deltaT === 0 };
  }

  update(step: number, params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): AllocationResult {
    const end = this.config.total_step - this.config.tfinal;
    if (step > end) {
      // After the final allocation the fixed mask is re-applied (PEFT's mask_using_rank_pattern).
      if (this.pattern) for (const t of this.triplets) this.applyMask(this.tensor(params, t.e, t.r), this.pattern[rankPatternKey(t.module)]);
      return { step, phase: 'fixed', budget: this.targetBudget, changed: false };
    }
    if (step < end) this.updateImportance(params, grads);
    const { budget, mask } = this.budgetSchedule(step);
    const phase: AllocationPhase = step === end ? 'final' : step <= this.config.tinit ? 'warmup' : 'allocate';
    if (!mask && step !== end) return { step, phase, budget, changed: false };
    const next = this.maskToBudget(params, budget);
    const changed = JSON.stringify(next) !== JSON.stringify(this.pattern);
    this.pattern = next;
    if (step === end) {
      this.expAvgIpt = new Map();
      this.expAvgUnc = new Map();
    }
    return { step, phase, budget, rankPattern: next, changed };
  }

  state(): AllocatorState {
    const copy = (m: Map<string, Float32Array>) => Object.fromEntries([...m].map(([k, v]) => [k, Float32Array.from(v)]));
    return { expAvgIpt: copy(this.expAvgIpt), expAvgUnc: copy(this.expAvgUnc), rankPattern: this.pattern };
  }

  loadState(s: AllocatorState): void {
    const sizes = new Map(this.triplets.flatMap((t) => [[t.a, t.r * t.inFeatures], [t.b, t.outFeatures * t.r], [t.e, t.r]] as const));
    for (const m of [s.expAvgIpt, s.expAvgUnc]) {
      for (const [k, v] of Object.entries(m)) {
        if (sizes.get(k) !== v.length) throw new PeftError(`AdaLoRA allocator state: '${k}' has ${v.length} values, this adapter needs ${sizes.get(k) ?? 'none'}`);
      }
    }
    const load = (m: Readonly<Record<string, Float32Array>>) => new Map(Object.entries(m).map(([k, v]) => [k, Float32Array.from(v)]));
    this.expAvgIpt = load(s.expAvgIpt);
    this.expAvgUnc = load(s.expAvgUnc);
    this.pattern = s.rankPattern ? normalizeRankPattern(s.rankPattern, '') : null;
  }

  private tensor(m: ReadonlyMap<string, Float32Array>, name: string, size: number, what = 'parameter'): Float32Array {
    const v = m.get(name);
    if (!v) throw new PeftError(`AdaLoRA allocator: ${what} '${name}' was not given`);
    if (v.length !== size) throw new PeftError(`AdaLoRA allocator: ${what} '${name}' has ${v.length} values, expected ${size}`);
    return v;
  }

  private updateImportance(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>): void {
    const [b1, c1] = [f(this.config.beta1), f(1 - this.config.beta1)];
    const [b2, c2] = [f(this.config.beta2), f(1 - this.config.beta2)];
    for (const t of this.triplets) {
      for (const [name, size] of [[t.a, t.r * t.inFeatures], [t.b, t.outFeatures * t.r], [t.e, t.r]] as const) {
        const p = this.tensor(params, name, size);
        const g = this.tensor(grads, name, size, 'gradient');
        let ipt = this.expAvgIpt.get(name);
        let unc = this.expAvgUnc.get(name);
        if (!ipt || !unc) {
          ipt = new Float32Array(size);
          unc = new Float32Array(size);
          this.expAvgIpt.set(name, ipt);
          this.expAvgUnc.set(name, unc);
        }
        for (let i = 0; i < size; i++) {
          const s = Math.abs(f(p[i]! * g[i]!));
          const avg = f(f(b1 * ipt[i]!) + f(c1 * s));
          ipt[i] = avg;
          unc[i] = f(f(b2 * unc[i]!) + f(c2 * Math.abs(f(s - avg))));
        }
      }
    }
  }

  /** Entry scores exp_avg_ipt · exp_avg_unc of a tensor (zeros before any update, as a fresh EMA would give). */
  private score(name: string, size: number): Float32Array {
    const ipt = this.expAvgIpt.get(name);
    const unc = this.expAvgUnc.get(name);
    const out = new Float32Array(size);
    if (ipt && unc) for (let i = 0; i < size; i++) out[i] = ipt[i]! * unc[i]!;
    return out;
  }

  private maskToBudget(params: ReadonlyMap<string, Float32Array>, budget: number): Record<string, boolean[]> {
    const scores = this.triplets.map((t) => {
      const sa = this.score(t.a, t.r * t.inFeatures);
      const sb = this.score(t.b, t.outFeatures * t.r);
      const se = this.score(t.e, t.r);
      const out = new Float32Array(t.r);
      for (let i = 0; i < t.r; i++) {
        let rowA = 0;
        for (let j = 0; j < t.inFeatures; j++) rowA += sa[i * t.inFeatures + j]!;
        let colB = 0;
        for (let j = 0; j < t.outFeatures; j++) colB += sb[j * t.r + i]!;
        out[i] = f(se[i]! + f(f(f(rowA) / t.inFeatures) + f(f(colB) / t.outFeatures)));
      }
      return out;
    });
    // torch.kthvalue(k = init − budget): the k-th smallest score; every triplet at or below it is masked.
    const k = this.initBudget - budget;
    const sorted = Float32Array.from(scores.flatMap((s) => Array.from(s))).sort();
    const threshold = k > 0 ? sorted[k - 1]! : -Infinity;
    const pattern: Record<string, boolean[]> = {};
    this.triplets.forEach((t, m) => {
      const keep = Array.from(scores[m]!, (s) => !(s <= threshold));
      this.applyMask(this.tensor(params, t.e, t.r), keep);
      pattern[rankPatternKey(t.module)] = keep;
    });
    return pattern;
  }

  private applyMask(e: Float32Array, keep: readonly boolean[] | undefined): void {
    if (!keep) return;
    if (keep.length !== e.length) throw new PeftError(`AdaLoRA rank pattern has ${keep.length} entries for a rank-${e.length} lora_E`);
    keep.forEach((k, i) => {
      if (!k) e[i] = 0;
    });
  }
}
