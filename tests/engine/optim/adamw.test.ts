import { describe, expect, it } from 'vitest';
import { AdamW, createOptimizer, lrAt, OptimizerError, type Param, type ParamGroup } from '../../../main/engine/optim/index.ts';
import { catchOptimizerError, expectClose, seededValues } from './helpers.ts';

/** torch.optim.AdamW's single-tensor loop, entirely in float64. */
class ReferenceAdamW {
  readonly p: number[];
  private readonly m: number[];
  private readonly v: number[];
  private step = 0;

  constructor(initial: Float32Array, private readonly group: { lr?: number; lrScale?: number; weightDecay: number }) {
    this.p = Array.from(initial);
    this.m = this.p.map(() => 0);
    this.v = this.p.map(() => 0);
  }

  update(grad: Float32Array, scheduledLr: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
    const lr = (this.group.lr ?? scheduledLr) * (this.group.lrScale ?? 1);
    this.step += 1;
    const biasCorrection1 = 1 - beta1 ** this.step;
    const biasCorrection2 = 1 - beta2 ** this.step;
    for (let i = 0; i < this.p.length; i++) {
      const g = grad[i] as number;
      this.p[i] = (this.p[i] as number) * (1 - lr * this.group.weightDecay);
      this.m[i] = (this.m[i] as number) + (1 - beta1) * (g - (this.m[i] as number));
      this.v[i] = (this.v[i] as number) * beta2 + (1 - beta2) * g * g;
      const denom = Math.sqrt(this.v[i] as number) / Math.sqrt(biasCorrection2) + eps;
      this.p[i] = (this.p[i] as number) - (lr / biasCorrection1) * ((this.m[i] as number) / denom);
    }
  }
}

const param = (name: string, values: ArrayLike<number>): Param => ({ name, data: Float32Array.from(values) });

describe('AdamW', () => {
  it('moves a parameter by -lr·g/(|g|+eps) on the first step without weight decay', () => {
    const up = param('up', [0.5, -1.25, 2]);
    const grads = [3, -0.25, 1e-3];
    const adamw = new AdamW([{ name: 'all', params: [up], weightDecay: 0 }]);
    adamw.step(new Map([['up', Float32Array.from(grads)]]), 0.1);
    const expected = [0.5, -1.25, 2].map((p0, i) => {
      const g = grads[i] as number;
      return Math.fround(p0 - (0.1 * g) / (Math.abs(g) + 1e-8));
    });
    expect(Array.from(up.data)).toEqual(expected);
    expect(up.data[0]).toBeCloseTo(0.4, 6);
    expect(up.data[1]).toBeCloseTo(-1.15, 6);
  });

  it('decays weights before the Adam update (decoupled)', () => {
    const w = param('w', [2]);
    const adamw = new AdamW([{ name: 'all', params: [w] }], { weightDecay: 0.5 });
    adamw.step(new Map([['w', Float32Array.from([0.5])]]), 0.1);
    // 2·(1 - 0.1·0.5) - 0.1
    expect(w.data[0]).toBeCloseTo(1.8, 6);
  });

  it('matches a float64 re-implementation of torch over 5 steps with per-group lr and weight decay', () => {
    const shapes = { a: 7, b: 5, c: 6, d: 3 };
    const initial = Object.fromEntries(Object.entries(shapes).map(([n, len], k) => [n, seededValues(k + 1, len)]));
    const params = Object.fromEntries(Object.entries(initial).map(([n, v]) => [n, param(n, v)]));
    // 'base' relies on the optimizer defaults (scheduled lr, weight decay 0.01).
    const groupSpecs = [
      { name: 'base', names: ['a', 'b'], hyper: {}, referenceHyper: { weightDecay: 0.01 } },
      { name: 'lora_plus_b', names: ['c'], hyper: { lrScale: 16, weightDecay: 0.1 } },
      { name: 'fixed', names: ['d'], hyper: { lr: 2e-3, weightDecay: 0 } },
    ];
    const groups: ParamGroup[] = groupSpecs.map((g) => ({
      name: g.name,
      params: g.names.map((n) => params[n] as Param),
      ...g.hyper,
    }));
    const references = new Map(
      groupSpecs.flatMap((g) =>
        g.names.map((n) => {
          const hyper = { weightDecay: 0, ...g.hyper, ...g.referenceHyper };
          return [n, new ReferenceAdamW(initial[n] as Float32Array, hyper)] as const;
        }),
      ),
    );
    const adamw = createOptimizer({ kind: 'adamw' }, groups);
    const schedule = { kind: 'linear', baseLr: 1e-3, warmupSteps: 2, totalSteps: 5 } as const;

    for (let step = 0; step < 5; step++) {
      const lr = lrAt(schedule, step);
      const grads = new Map<string, Float32Array>();
      for (const [name, len] of Object.entries(shapes)) {
        if (name === 'b' && step === 2) continue; // no gradient: skipped, as torch skips p.grad is None
        grads.set(name, seededValues(100 * step + name.charCodeAt(0), len).map((g) => g * (step + 1)));
      }
      adamw.step(grads, lr);
      for (const [name, grad] of grads) references.get(name)?.update(grad, lr);
    }

    for (const [name, reference] of references) expectClose((params[name] as Param).data, reference.p, 2e-7);
    expect(adamw.stateDict().paramSteps).toEqual({ a: 5, b: 4, c: 5, d: 5 });
    expect(adamw.stateDict().step).toBe(5);
  });

  it('leaves parameters unchanged at lr 0 but still advances its moments', () => {
    const w = param('w', [1, 2]);
    const adamw = new AdamW([{ name: 'all', params: [w] }]);
    adamw.step(new Map([['w', Float32Array.from([0.3, -0.3])]]), 0);
    expect(Array.from(w.data)).toEqual([1, 2]);
    expect(adamw.stateDict().paramSteps).toEqual({ w: 1 });
    expect(adamw.stateDict().tensors['exp_avg/w']?.[0]).toBeCloseTo(0.03, 8);
  });
});

describe('AdamW errors', () => {
  const setup = (): { w: Param; adamw: AdamW } => {
    const w = param('layers.0.lora_A', [1, 2, 3]);
    return { w, adamw: new AdamW([{ name: 'g', params: [w, param('other', [4])] }]) };
  };

  it('rejects a wrong-length gradient, naming the tensor, before touching anything', () => {
    const { w, adamw } = setup();
    const before = adamw.stateDict();
    const error = catchOptimizerError(() =>
      adamw.step(new Map([['other', Float32Array.from([1])], ['layers.0.lora_A', new Float32Array(2)]]), 0.1),
    );
    expect(error.code).toBe('invalid-gradient');
    expect(error.tensor).toBe('layers.0.lora_A');
    expect(error.message).toContain('layers.0.lora_A');
    expect(Array.from(w.data)).toEqual([1, 2, 3]);
    expect(adamw.stateDict()).toEqual(before);
  });

  it('rejects gradients for unknown names and entries without an array', () => {
    const { adamw } = setup();
    expect(catchOptimizerError(() => adamw.step(new Map([['typo', new Float32Array(3)]]), 0.1)).tensor).toBe('typo');
    const missing = new Map([['other', undefined as unknown as Float32Array]]);
    expect(catchOptimizerError(() => adamw.step(missing, 0.1)).tensor).toBe('other');
  });

  it('rejects invalid hyperparameters, learning rates and duplicate parameters', () => {
    const w = param('w', [1]);
    expect(() => new AdamW([{ name: 'g', params: [w] }], { betas: [1, 0.999] })).toThrow(OptimizerError);
    expect(() => new AdamW([{ name: 'g', params: [w] }], { eps: -1 })).toThrow(/eps/);
    expect(() => new AdamW([{ name: 'g', params: [w], lrScale: Number.NaN }])).toThrow(/lrScale/);
    const duplicate = catchOptimizerError(() => new AdamW([{ name: 'g', params: [w] }, { name: 'h', params: [w] }]));
    expect(duplicate.tensor).toBe('w');
    const adamw = new AdamW([{ name: 'g', params: [w] }]);
    expect(() => adamw.step(new Map(), -0.1)).toThrow(/learning rate/);
    expect(() => createOptimizer({ kind: 'adam' } as never, [])).toThrow(/unknown optimizer kind/);
  });
});
