import { describe, expect, it } from 'vitest';
import { DynamicLossScaler } from '../../../main/engine/precision/loss-scaler.ts';
import { toMixedPrecision } from '../../../main/engine/precision/mixed-precision.ts';
import { TrainStep } from '../../../main/engine/train-step.ts';
import { transformerTask } from '../train/tiny-models.ts';

describe('mixed precision', () => {
  it('rewrites compute to float16 but keeps float32 inputs, outputs and the FLOAT32_OPS', () => {
    const task = transformerTask();
    const mixed = toMixedPrecision(task.graph);
    const dtypeOf = (id: number) => mixed.value(id).type.dtype;
    const ops = (op: string) => mixed.nodes.filter((n) => n.op === op);
    expect(ops('Gemm').every((n) => dtypeOf(n.outputs[0]!) === 'float16')).toBe(true);
    expect(ops('Softmax').every((n) => dtypeOf(n.outputs[0]!) === 'float32')).toBe(true);
    expect(mixed.inputs.map(dtypeOf)).toEqual(task.graph.inputs.map((id) => task.graph.value(id).type.dtype));
    expect(dtypeOf(mixed.idOf('loss'))).toBe('float32');
  });

  it('gives float32 gradients close to the float32 graph’s', async () => {
    const task = transformerTask();
    const make = (mixedPrecision: false | { initScale: number }) =>
      TrainStep.create({ graph: task.graph, params: task.params, optimizer: { kind: 'sgd' }, lr: 0, mixedPrecision, session: { threads: 1 } });
    const [full, half] = await Promise.all([make(false), make({ initScale: 256 })]);
    const a = await full.computeGradients(task.batch);
    const b = await half.computeGradients(task.batch);
    expect(b.finite).toBe(true);
    expect(Math.abs(b.loss - a.loss)).toBeLessThan(1e-2 * Math.abs(a.loss));
    for (const [name, g] of a.grads) {
      const h = b.grads.get(name)!;
      const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const err = g.reduce((m, v, i) => Math.max(m, Math.abs(v - h[i]!)), 0);
      expect(err, name).toBeLessThan(3e-2 * scale + 1e-5);
    }
    await Promise.all([full.release(), half.release()]);
  });

  it('skips a step whose scaled gradients overflow float16 and backs the scale off', async () => {
    const task = transformerTask();
    const trainer = await TrainStep.create({
      graph: task.graph,
      params: task.params,
      optimizer: { kind: 'adamw' },
      lr: 1e-2,
      mixedPrecision: { initScale: 2 ** 40, growthInterval: 3 },
      session: { threads: 1 },
    });
    const before = trainer.paramsSnapshot();
    const first = await trainer.step(task.batch);
    expect(first.skipped).toBe(true);
    expect(trainer.paramsSnapshot()).toEqual(before);
    expect(trainer.state().lossScaler!.scale).toBe(2 ** 39);
    let r = first;
    for (let i = 0; i < 40 && r.skipped; i++) r = await trainer.step(task.batch);
    expect(r.skipped).toBe(false);
    expect(trainer.paramsSnapshot()).not.toEqual(before);
    await trainer.release();
  });

  it('DynamicLossScaler unscales, backs off on overflow and grows after an interval', () => {
    const s = new DynamicLossScaler({ initScale: 8, growthInterval: 2 });
    const g = new Float32Array([8, -16]);
    expect(s.unscale([g])).toBe(true);
    expect(Array.from(g)).toEqual([1, -2]);
    expect(s.unscale([new Float32Array([Infinity])])).toBe(false);
    s.update(false);
    expect(s.scale).toBe(4);
    s.update(true);
    s.update(true);
    expect(s.scale).toBe(8);
    expect(s.state()).toEqual({ scale: 8, goodSteps: 0 });
  });
});
