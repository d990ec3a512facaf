/**
 * Dynamic loss scaling for float16 training (as torch.cuda.amp.GradScaler): gradients are computed for
 * loss × scale; a step whose gradients overflow is skipped and the scale halves; after `growthInterval`
 * good steps in a row it doubles.
 */
export interface LossScalerOptions {
  readonly initScale?: number;
  readonly growthFactor?: number;
  readonly backoffFactor?: number;
  readonly growthInterval?: number;
}

export interface LossScalerState {
  readonly scale: number;
  readonly goodSteps: number;
}

export class DynamicLossScaler {
  private scaleValue: number;
  private goodSteps = 0;
  private readonly growth: number;
  private readonly backoff: number;
  private readonly interval: number;

  constructor(o: LossScalerOptions = {}) {
    this.scaleValue = o.initScale ?? 2 ** 16;
    this.growth = o.growthFactor ?? 2;
    this.backoff = o.backoffFactor ?? 0.5;
    this.interval = o.growthInterval ?? 2000;
  }

  get scale(): number {
    return this.scaleValue;
  }

  /** Divides the gradients by the scale in place; false when any is not finite (they are left as they are). */
  unscale(grads: Iterable<Float32Array>): boolean {
    const all = [...grads];
    for (const g of all) for (let i = 0; i < g.length; i++) if (!Number.isFinite(g[i]!)) return false;
    const inv = 1 / this.scaleValue;
    for (const g of all) for (let i = 0; i < g.length; i++) g[i]! *= inv;
    return true;
  }

  /** After a step: back off when the gradients overflowed, grow after `growthInterval` good steps. */
  update(finite: boolean): void {
    if (!finite) {
      this.scaleValue *= this.backoff;
      this.goodSteps = 0;
    } else if (++this.goodSteps >= this.interval) {
      this.scaleValue *= this.growth;
      this.goodSteps = 0;
    }
  }

  state(): LossScalerState {
    return { scale: this.scaleValue, goodSteps: this.goodSteps };
  }

  load(s: LossScalerState): void {
    this.scaleValue = s.scale;
    this.goodSteps = s.goodSteps;
  }
}
