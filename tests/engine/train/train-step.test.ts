import { describe, expect, it } from 'vitest';
import { TrainStep } from '../../../main/engine/train-step.ts';
import { mlpTask, transformerTask, type TinyTask } from './tiny-models.ts';

const train = async (task: TinyTask, steps: number, lr: number, extra: Partial<Parameters<typeof TrainStep.create>[0]> = {}) => {
  const trainer = await TrainStep.create({
    graph: task.graph,
    params: task.params,
    optimizer: { kind: 'adamw', weightDecay: 0 },
    lr,
    maxGradNorm: 1,
    session: { threads: 1 },
    ...extra,
  });
  const losses: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const r = await trainer.step(task.batch);
      expect(r.skipped, `step ${r.step} skipped`).toBe(false);
      losses.push(r.loss);
    }
  } finally {
    await trainer.release();
  }
  return losses;
};

describe('TrainStep trains models written in the IR through ORT', () => {
  it('a two-layer MLP: loss falls by ≥ 90%', async () => {
    const losses = await train(mlpTask(), 300, 2e-2);
    expect(losses.at(-1)!).toBeLessThan(0.1 * losses[0]!);
  });

  it('a one-block transformer (GQA attention, RMSNorm, SwiGLU): loss falls by ≥ 90%', async () => {
    const losses = await train(transformerTask(), 300, 1e-2);
    expect(losses.at(-1)!).toBeLessThan(0.1 * losses[0]!);
  });

  it('gradient checkpointing gives the same gradients as keeping activations', async () => {
    const task = transformerTask();
    const make = (recompute: boolean) =>
      TrainStep.create({ graph: task.graph, params: task.params, optimizer: { kind: 'sgd' }, lr: 0, recompute, session: { threads: 1 } });
    const [plain, recomputed] = await Promise.all([make(false), make(true)]);
    const a = await plain.computeGradients(task.batch);
    const b = await recomputed.computeGradients(task.batch);
    expect(b.loss).toBeCloseTo(a.loss, 6);
    for (const [name, g] of a.grads) {
      const h = b.grads.get(name)!;
      const err = g.reduce((m, v, i) => Math.max(m, Math.abs(v - h[i]!)), 0);
      const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(err, name).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
    }
    await Promise.all([plain.release(), recomputed.release()]);
  });

  it('mixed precision (float16 compute, float32 master weights, loss scaling) trains', async () => {
    const losses = await train(transformerTask(), 200, 1e-2, { mixedPrecision: { initScale: 2 ** 10 } });
    expect(losses.at(-1)!).toBeLessThan(0.2 * losses[0]!);
  });

  it('rejects a trainable tensor whose size does not match the graph, naming it', async () => {
    const task = mlpTask();
    const params = task.params.map((p) => (p.name === 'fc2.bias' ? { name: p.name, data: new Float32Array(3) } : p));
    await expect(TrainStep.create({ graph: task.graph, params, optimizer: { kind: 'sgd' }, lr: 0.1 })).rejects.toThrow(/fc2\.bias/);
  });
});
