import { checkNumber, OptimizerError } from './errors.ts';
import { ParamStateTable, type TrackedParam } from './param-state.ts';
import type { Optimizer, OptimizerState, ParamGroup } from './types.ts';

export interface AdamWOptions {
  /** Default [0.9, 0.999]. */
  readonly betas?: readonly [number, number];
  /** Default 1e-8; added after sqrt(v̂). */
  readonly eps?: number;
  /** Default 0.01; groups may override. */
  readonly weightDecay?: number;
}

export type AdamWConfig = AdamWOptions & { readonly kind: 'adamw' };

type AdamWSlot = 'exp_avg' | 'exp_avg_sq';

/** torch.optim.AdamW (amsgrad=False, maximize=False): fp32 state, float64 arithmetic per element. */
export class AdamW implements Optimizer {
  readonly kind = 'adamw';
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly table: ParamStateTable<AdamWSlot>;
  private stepCount = 0;

  constructor(groups: readonly ParamGroup[], options: AdamWOptions = {}) {
    const betas = options.betas ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2) {
      throw new OptimizerError('invalid-config', 'AdamW betas must be a pair of numbers');
    }
    this.beta1 = checkNumber(betas[0], 'AdamW beta1', { min: 0, below: 1 });
    this.beta2 = checkNumber(betas[1], 'AdamW beta2', { min: 0, below: 1 });
    this.eps = checkNumber(options.eps ?? 1e-8, 'AdamW eps', { min: 0 });
    this.weightDecay = checkNumber(options.weightDecay ?? 0.01, 'AdamW weightDecay', { min: 0 });
    this.table = new ParamStateTable(groups, ['exp_avg', 'exp_avg_sq']);
  }

  step(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.table.forEachUpdate(grads, lr, this.weightDecay, (entry, grad, groupRate, decay) => this.update(entry, grad, groupRate, decay));
    this.stepCount += 1;
  }

  private update(entry: TrackedParam<AdamWSlot>, grad: Float32Array, lr: number, weightDecay: number): void {
    const { beta1, beta2, eps } = this;
    const p = entry.param.data;
    const expAvg = entry.slots.exp_avg;
    const expAvgSq = entry.slots.exp_avg_sq;
    const decay = 1 - lr * weightDecay;
    const stepSize = lr / (1 - beta1 ** entry.step);
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** entry.step);
    const gradWeight = 1 - beta1;
    const gradSqWeight = 1 - beta2;
    for (let i = 0; i < p.length; i++) {
      const g = grad[i] as number;
      // Read moments back from the Float32Arrays so the update uses the stored (fp32) state, as torch does.
      expAvg[i] = beta1 * (expAvg[i] as number) + gradWeight * g;
      expAvgSq[i] = beta2 * (expAvgSq[i] as number) + gradSqWeight * g * g;
      const denom = Math.sqrt(expAvgSq[i] as number) / biasCorrection2Sqrt + eps;
      p[i] = (p[i] as number) * decay - stepSize * ((expAvg[i] as number) / denom);
    }
  }

  stateDict(): OptimizerState {
    return this.table.toState(this.kind, this.stepCount, {
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
    });
  }

  loadStateDict(state: OptimizerState): void {
    this.stepCount = this.table.load(state, this.kind);
  }
}
