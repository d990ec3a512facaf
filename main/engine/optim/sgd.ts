import { checkNumber, OptimizerError } from './errors.ts';
import { ParamStateTable, type TrackedParam } from './param-state.ts';
import type { Optimizer, OptimizerState, ParamGroup } from './types.ts';

export interface SgdOptions {
  /** Default 0 (no momentum buffer is kept). */
  readonly momentum?: number;
  /** Default 0. */
  readonly dampening?: number;
  /** Default false; needs momentum > 0 and dampening 0. */
  readonly nesterov?: boolean;
  /** Default 0; added to the gradient (coupled L2), groups may override. */
  readonly weightDecay?: number;
}

export type SgdConfig = SgdOptions & { readonly kind: 'sgd' };

const MOMENTUM_BUFFER = 'momentum_buffer';

/** torch.optim.SGD (maximize=False): fp32 momentum buffer, float64 arithmetic per element. */
export class SGD implements Optimizer {
  readonly kind = 'sgd';
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;
  // Slots are typed by string: the buffer exists only when momentum is on, as in torch.
  private readonly table: ParamStateTable<string>;
  private stepCount = 0;

  constructor(groups: readonly ParamGroup[], options: SgdOptions = {}) {
    this.momentum = checkNumber(options.momentum ?? 0, 'SGD momentum', { min: 0 });
    this.dampening = checkNumber(options.dampening ?? 0, 'SGD dampening');
    this.weightDecay = checkNumber(options.weightDecay ?? 0, 'SGD weightDecay', { min: 0 });
    const nesterov = options.nesterov ?? false;
    if (typeof nesterov !== 'boolean') throw new OptimizerError('invalid-config', 'SGD nesterov must be a boolean');
    if (nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new OptimizerError('invalid-config', 'SGD nesterov momentum requires momentum > 0 and dampening 0');
    }
    this.nesterov = nesterov;
    this.table = new ParamStateTable<string>(groups, this.momentum !== 0 ? [MOMENTUM_BUFFER] : []);
  }

  step(grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    this.table.forEachUpdate(grads, lr, this.weightDecay, (entry, grad, groupRate, decay) => this.update(entry, grad, groupRate, decay));
    this.stepCount += 1;
  }

  private update(entry: TrackedParam<string>, grad: Float32Array, lr: number, weightDecay: number): void {
    const { momentum, nesterov } = this;
    const p = entry.param.data;
    const buf = entry.slots[MOMENTUM_BUFFER];
    const firstStep = entry.step === 1;
    const gradWeight = 1 - this.dampening;
    for (let i = 0; i < p.length; i++) {
      let d = (grad[i] as number) + weightDecay * (p[i] as number);
      if (buf !== undefined) {
        // torch starts the buffer as a copy of the (decayed) gradient, without dampening.
        buf[i] = firstStep ? d : momentum * (buf[i] as number) + gradWeight * d;
        d = nesterov ? d + momentum * (buf[i] as number) : (buf[i] as number);
      }
      p[i] = (p[i] as number) - lr * d;
    }
  }

  stateDict(): OptimizerState {
    return this.table.toState(this.kind, this.stepCount, {
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov,
      weightDecay: this.weightDecay,
    });
  }

  loadStateDict(state: OptimizerState): void {
    this.stepCount = this.table.load(state, this.kind);
  }
}
