// The LoRA-FA optimizer (Zhang et al., 2023) as HF PEFT 0.17 implements it (peft/optimizers/lorafa.py,
// LoraFAOptimizer): LoRA's A is frozen and B's gradient is projected onto what full fine-tuning would do,
//   g̃_B = (1/s²) · g_B · (A·Aᵀ + 1e-8·I)⁺,
// then B takes an "adamw-hf" step (eps 1e-6 added to √v, bias correction folded into the step size, decoupled
// weight decay applied after the update to the updated B). Tensors without a frozen A take the same step with
// their raw gradient. The engine knows no PEFT: callers pass, for each B, its frozen A and LoRA scale s.
import { checkNumber, OptimizerError } from './errors.ts';
import { ParamStateTable, type TrackedParam } from './param-state.ts';
import type { Optimizer, OptimizerState, ParamGroup } from './types.ts';

/** The frozen factor of one B (out × rank): A (rank × in, row-major) and LoRA's scale s = α/r (α/√r for rsLoRA). */
export interface LowRankFactor {
  readonly a: Float32Array;
  readonly rank: number;
  readonly scaling: number;
}

export interface LoraFaOptions {
  /** Default [0.9, 0.999]. */
  readonly betas?: readonly [number, number];
  /** Default 1e-6 (LoraFAOptimizer's), added to √v. */
  readonly eps?: number;
  /** Default 0; groups may override. */
  readonly weightDecay?: number;
  /** Default true. */
  readonly correctBias?: boolean;
  /**
   * 'bfloat16' (default) reproduces PEFT, which computes g_B·(AAᵀ)⁺ and the 1/s² scaling under bf16 autocast
   * whenever bf16 is available — on CPU always. 'float32' computes the projection in float64 and rounds once.
   */
  readonly projectionPrecision?: 'bfloat16' | 'float32';
}

type Slot = 'exp_avg' | 'exp_avg_sq';

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
/** Round to bfloat16 (nearest, ties to even) as torch does, returned as a number. */
export const roundBf16 = (x: number): number => {
  F32[0] = x;
  if (Number.isNaN(F32[0])) return x;
  const u = U32[0]!;
  U32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return F32[0];
};

/**
 * Moore–Penrose inverse of a symmetric positive semi-definite n×n matrix (float64, row-major) by cyclic Jacobi
 * rotations. Eigenvalues ≤ rtol·λmax are dropped, as torch.linalg.pinv drops singular values (its default rtol
 * for float32 input is n·2⁻²³).
 */
export const symmetricPinv = (m: Float64Array, n: number, rtol = n * 2 ** -23): Float64Array => {
  const a = Float64Array.from(m);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const scale = a.reduce((s, x) => s + x * x, 0);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * scale) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  const eig = Array.from({ length: n }, (_, i) => a[i * n + i]!);
  const cutoff = rtol * Math.max(0, ...eig.map(Math.abs));
  const out = new Float64Array(n * n);
  for (let e = 0; e < n; e++) {
    if (!(Math.abs(eig[e]!) > cutoff)) continue;
    const inv = 1 / eig[e]!;
    for (let i = 0; i < n; i++) {
      const vi = v[i * n + e]! * inv;
      for (let j = 0; j < n; j++) out[i * n + j]! += vi * v[j * n + e]!;
    }
  }
  return out;
};

/** (A·Aᵀ + δ·I)⁺ for A (rank × in), as LoraFAOptimizer forms it (δ = 1e-8). */
export const loraFaGram = (a: Float32Array, rank: number): Float64Array => {
  const inF = a.length / rank;
  const g = new Float64Array(rank * rank);
  for (let i = 0; i < rank; i++) {
    for (let j = i; j < rank; j++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += a[i * inF + k]! * a[j * inF + k]!;
      g[i * rank + j] = s;
      g[j * rank + i] = s;
    }
    g[i * rank + i]! += 1e-8;
  }
  return symmetricPinv(g, rank);
};

/** g̃_B = (1/s²)·g_B·P for g_B (out × rank) and P = (AAᵀ + δI)⁺ (rank × rank), in PEFT's precision or float32. */
export const loraFaProject = (
  gradB: Float32Array,
  pinv: Float64Array,
  rank: number,
  scaling: number,
  precision: 'bfloat16' | 'float32' = 'bfloat16',
): Float32Array => {
  const out = new Float32Array(gradB.length);
  const rows = gradB.length / rank;
  const bf = precision === 'bfloat16';
  const p = bf ? pinv.map((x) => roundBf16(Math.fround(x))) : pinv;
  const g = bf ? gradB.map(roundBf16) : gradB;
  const factor = 1 / scaling ** 2;
  const factor32 = Math.fround(factor);
  for (let o = 0; o < rows; o++) {
    for (let j = 0; j < rank; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += g[o * rank + k]! * p[k * rank + j]!;
      // bf16 autocast: the matmul rounds its fp32 accumulation to bf16; the scalar multiply is a bf16 op.
      out[o * rank + j] = bf ? roundBf16(Math.fround(roundBf16(Math.fround(s)) * factor32)) : s * factor;
    }
  }
  return out;
};

/** LoraFAOptimizer: Optimizer over any param groups; the params named in `factors` are LoRA B matrices. */
export class LoraFA implements Optimizer {
  /** Its state has AdamW's layout (exp_avg, exp_avg_sq); `hyper.lorafa` marks it. */
  readonly kind = 'adamw';
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly correctBias: boolean;
  private readonly precision: 'bfloat16' | 'float32';
  private readonly table: ParamStateTable<Slot>;
  private readonly pinvs = new Map<string, Float64Array>();
  private stepCount = 0;

  constructor(
    groups: readonly ParamGroup[],
    private readonly factors: ReadonlyMap<string, LowRankFactor>,
    options: LoraFaOptions = {},
  ) {
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) throw new OptimizerError('invalid-config', 'LoRA-FA betas must be a pair of numbers');
    this.beta1 = checkNumber(betas[0], 'LoRA-FA beta1', { min: 0, below: 1 });
    this.beta2 = checkNumber(betas[1], 'LoRA-FA beta2', { min: 0, below: 1 });
    this.eps = checkNumber(options.eps ?? 1e-6, 'LoRA-FA eps', { min: 0 });
    this.weightDecay = checkNumber(options.weightDecay ?? 0, 'LoRA-FA weightDecay', { min: 0 });
    this.correctBias = options.correctBias ?? true;
    this.precision = options.projectionPrecision ?? 'bfloat16';
    if (!['bfloat16', 'float32'].includes(this.precision)) {
      throw new OptimizerError('invalid-config', `LoRA-FA projectionPrecision must be 'bfloat16' or 'float32', got ${String(this.precision)}`);
    }
    this.table = new ParamStateTable(groups, ['exp_avg', 'exp_avg_sq']);
    const known = new Map(this.table.tracked.map((t) => [t.param.name, t.param]));
    for (const [name, f] of factors) {
      const b = known.get(name);
      if (!b) throw new OptimizerError('invalid-config', `LoRA-FA factor for '${name}', which is in no param group`, name);
      checkNumber(f.rank, `LoRA-FA rank of '${name}'`, { min: 1, integer: true }, 'invalid-config', name);
      checkNumber(f.scaling, `LoRA-FA scaling of '${name}'`, { min: Number.MIN_VALUE }, 'invalid-config', name);
      if (b.data.length % f.rank !== 0 || f.a.length % f.rank !== 0 || f.a.length === 0) {
        throw new OptimizerError('invalid-config', `LoRA-FA: '${name}' (${b.data.length} values) and its A (${f.a.length}) do not share rank ${f.rank}`, name);
      }
    }
  }

  /** The gradient B's Adam step uses (the projection for a LoRA B, else the gradient itself). */
  projectedGradient(name: string, grad: Float32Array): Float32Array {
    const f = this.factors.get(name);
    if (!f) return grad;
    let pinv = this.pinvs.get(name);
    if (!pinv) {
      pinv = loraFaGram(f.a, f.rank); // A is frozen: (AAᵀ + δI)⁺ is computed once.
      this.pinvs.set(name, pinv);
    }
    return loraFaProject(grad, pinv, f.rank, f.scaling, this.precision);
  }

  step(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.table.forEachUpdate(grads, lr, this.weightDecay, (entry, grad, groupRate, decay) =>
      this.update(entry, this.projectedGradient(entry.param.name, grad), groupRate, decay),
    );
    this.stepCount += 1;
  }

  private update(entry: TrackedParam<Slot>, grad: Float32Array, lr: number, weightDecay: number): void {
    const { beta1, beta2, eps } = this;
    const p = entry.param.data;
    const m = entry.slots.exp_avg;
    const v = entry.slots.exp_avg_sq;
    const stepSize = this.correctBias ? (lr * Math.sqrt(1 - beta2 ** entry.step)) / (1 - beta1 ** entry.step) : lr;
    for (let i = 0; i < p.length; i++) {
      const g = grad[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      p[i] = p[i]! - stepSize * (m[i]! / (Math.sqrt(v[i]!) + eps));
      if (weightDecay > 0) p[i] = p[i]! - lr * weightDecay * p[i]!;
    }
  }

  stateDict(): OptimizerState {
    return this.table.toState(this.kind, this.stepCount, {
      lorafa: true,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      correctBias: this.correctBias,
    });
  }

  loadStateDict(state: OptimizerState): void {
    if (state.hyper?.lorafa !== true) throw new OptimizerError('invalid-state', 'optimizer state is not a LoRA-FA state (hyper.lorafa is not set)');
    this.stepCount = this.table.load(state, this.kind);
  }
}
