import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineWorker } from '../../main/worker/engine-client.ts';
import type { EngineEvent } from '../../main/worker/engine-protocol.ts';
import { transformerTask, BLOCK } from '../engine/train/tiny-models.ts';

describe('engine worker', () => {
  let engine: EngineWorker;
  beforeAll(() => {
    engine = EngineWorker.start();
  });
  afterAll(() => engine.terminate());

  it('keeps the main event loop running during a multi-second training run, and cancels it', async () => {
    // Large enough that each step takes tens of milliseconds.
    const task = transformerTask({ ...BLOCK, batch: 32, seq: 64, vocab: 64, dim: 256, heads: 8, kvHeads: 4, ffn: 1024 });
    const trainer = await engine.createTrainer({
      graph: task.graph,
      params: task.params,
      optimizer: { kind: 'adamw' },
      lr: 1e-3,
      session: { threads: 1 },
    });
    const events: EngineEvent[] = [];
    // One ordered log of timer ticks and step events: if a run blocked the main thread, no tick could land
    // between two steps (they would all arrive after the run), whatever the machine's speed.
    const log: ('tick' | 'step')[] = [];
    const timer = setInterval(() => log.push('tick'), 50);
    const STEPS = 8;
    let run: ReturnType<typeof trainer.run> | undefined = undefined;
    run = trainer.run([task.batch], 100_000, (e) => {
      events.push(e);
      log.push('step');
      if (events.length === STEPS) run!.cancel();
    });
    const result = await run.done;
    clearInterval(timer);

    expect(result.cancelled).toBe(true);
    expect(events.length).toBe(result.steps);
    expect(events.length).toBeGreaterThanOrEqual(STEPS);
    const stepAt = log.flatMap((k, i) => (k === 'step' ? [i] : []));
    const gapsWithTicks = stepAt.slice(1).filter((at, i) => log.slice(stepAt[i]! + 1, at).includes('tick')).length;
    expect(gapsWithTicks).toBeGreaterThanOrEqual(STEPS / 2);
    expect(events.at(-1)!.result.loss).toBeLessThan(events[0]!.result.loss);
    const params = await trainer.params();
    expect(params.map((p) => p.name)).toEqual(task.params.map((p) => p.name));
    expect(params[0]!.data).not.toEqual(task.params[0]!.data);
    await trainer.release();
  });

  it('reports errors from the worker with their message', async () => {
    const task = transformerTask();
    const params = task.params.map((p, i) => (i === 0 ? { name: 'nope', data: p.data } : p));
    await expect(engine.createTrainer({ graph: task.graph, params, optimizer: { kind: 'sgd' }, lr: 0.1 })).rejects.toThrow(/'nope'/);
  });
});
