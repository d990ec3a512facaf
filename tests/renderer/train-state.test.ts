// TrainingState against the real service training a tiny Llama: the form reads as a run config, the live curves
// grow with the steps, pause → paused → resume continues from the checkpoint, cancel stops, and a bad field's error
// is keyed to that field.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../../renderer/lib/api.ts';
import { TrainingState } from '../../renderer/lib/state/training.svelte.ts';
import { fillQuickRun, tinyModel, trainBench, type TrainBench } from './train-fixtures.ts';

describe.skipIf(!tinyModel)('TrainingState', () => {
  let bench: TrainBench;
  let training: TrainingState;
  beforeEach(async () => {
    bench = await trainBench();
    training = bench.app.area('training', (a) => new TrainingState(a));
    await training.load();
  });
  afterEach(() => {
    training.dispose();
    bench.close();
  });

  it('starts from the catalog: LoRA with its parser defaults, a dataset path to type when the library is empty', () => {
    expect(training.method?.peftType).toBe('LORA');
    expect(training.methodForm?.values.r).toBe('8');
    expect(training.methodForm?.values.target_modules).toBe('all-linear');
    expect(training.datasetChoice).toBe('file');
    expect(training.outputDir).toBe(join(bench.service.dir, 'adapters', training.runName));
    // Only what the user set (and what the parser requires) goes into the method block.
    training.methodForm!.set('r', '4');
    const { config } = training.buildConfig('/d.jsonl', '/out');
    expect(config?.method).toEqual({ peft_type: 'LORA', target_modules: 'all-linear', r: 4 });
    expect(config?.training).toMatchObject({ lr: 0.0002, microBatchSize: 4, schedule: 'cosine' });
  });

  it('trains: the loss curve grows step by step, the run becomes the workspace run, its adapter is written', async () => {
    fillQuickRun(training, bench.datasetPath, { steps: 6 });
    const seen: number[] = [];
    const watch = setInterval(() => seen.push(training.loss.length), 1);
    await training.start();
    clearInterval(watch);
    expect(training.status).toBe('completed');
    expect(training.loss.map((p) => p.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(training.lr).toHaveLength(6);
    expect(training.gradNorm).toHaveLength(6);
    expect(training.evalLoss.length).toBeGreaterThan(0);
    expect(training.totalSteps).toBe(6);
    expect(new Set(seen).size).toBeGreaterThan(2); // seen mid-run with several point counts: the curve streamed
    expect(bench.app.workspace.runId).toBe(training.runId);
    const result = training.task.result!;
    expect(result.adapterDir).toBe(join(bench.service.dir, 'adapters', (bench.service.store.runs.get(result.runId).config.name as string), 'adapter'));
    expect(existsSync(join(result.adapterDir!, 'adapter_config.json'))).toBe(true);
  });

  it('trains on a dataset of the library: datasets.file writes its version out and the run reads that file', async () => {
    const imported = await api().request('datasets.import', { path: bench.datasetPath, name: 'counting' });
    bench.app.workspace.datasetId = imported.dataset.id;
    await training.load();
    expect(training.datasetChoice).toBe(`ds:${imported.dataset.id}`);
    fillQuickRun(training, undefined, { steps: 2 });
    await training.start();
    expect(training.status).toBe('completed');
    const { path } = await api().request('datasets.file', { id: imported.dataset.id });
    const run = bench.service.store.runs.get(training.runId!);
    expect((run.config.dataset as { path: string }).path).toBe(path);
    expect(path).not.toBe(bench.datasetPath);
  });

  it('pauses after a step, then resumes from its checkpoint to the end', async () => {
    fillQuickRun(training, bench.datasetPath, { steps: 24 });
    const started = training.start();
    await vi.waitFor(() => expect(training.loss.length).toBeGreaterThanOrEqual(2), { timeout: 60_000, interval: 5 });
    await training.pause();
    await started;
    expect(training.status).toBe('paused');
    const pausedAt = training.task.result!.steps;
    expect(pausedAt).toBeLessThan(24);
    expect(bench.service.store.runs.get(training.runId!).status).toBe('paused');
    expect(training.canResume).toBe(true);

    await training.resume();
    expect(training.status).toBe('completed');
    expect(training.task.result).toMatchObject({ runId: training.runId, resumedFrom: pausedAt, steps: 24 });
    expect(training.loss.map((p) => p.x)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(bench.service.store.runs.list()).toHaveLength(1);
  });

  it('cancels after the current step', async () => {
    fillQuickRun(training, bench.datasetPath, { steps: 200 });
    const started = training.start();
    await vi.waitFor(() => expect(training.loss.length).toBeGreaterThanOrEqual(1), { timeout: 60_000, interval: 5 });
    await training.cancel();
    await started;
    expect(training.status).toBe('cancelled');
    expect(training.loss.length).toBeLessThan(200);
    expect(bench.service.store.runs.get(training.runId!).status).toBe('cancelled');
    expect(training.canResume).toBe(false);
  });

  it('keys each error to the field it names: the config parser, the payload schema, the method parser, a bad input', async () => {
    fillQuickRun(training, bench.datasetPath, { steps: 2, lr: '0' });
    await training.start();
    expect(training.status).toBe('failed');
    expect(training.inputErrors['training.lr']).toMatch(/training\.lr must be positive/);

    training.training!.set('lr', '0.01');
    training.datasetBlock!.set('evalFraction', '1.5');
    await training.start();
    expect(Object.keys(training.inputErrors)).toEqual(['dataset.evalFraction']);

    training.datasetBlock!.set('evalFraction', '0.25');
    training.methodForm!.set('lora_dropout', '1');
    await training.start();
    expect(training.inputErrors['method.lora_dropout']).toMatch(/must be in \[0, 1\)/);

    training.methodForm!.set('lora_dropout', '0');
    training.methodForm!.set('r', 'four');
    const sent = bench.service.sent.length;
    await training.start();
    expect(training.inputErrors['method.r']).toMatch(/whole number|number/);
    expect(bench.service.sent.length).toBe(sent); // caught before anything was sent

    training.methodForm!.set('r', '2');
    training.datasetPath = join(bench.service.dir, 'missing.jsonl');
    await training.start();
    expect(Object.keys(training.inputErrors)).toEqual(['dataset.path']);
  });

  it('estimates the run the form describes, and names the field of a config it cannot estimate', async () => {
    fillQuickRun(training, bench.datasetPath, { steps: 6 });
    await training.runEstimate(training.estimateConfig!);
    expect(training.estimateError).toBeUndefined();
    expect(training.estimate!.peakRssBytes).toBeGreaterThan(0);
    expect(training.estimate!.stepSeconds).toBeGreaterThan(0);
    expect(training.estimate!.steps).toBe(6);
    const smaller = training.estimate!.trainableParameters;
    training.methodForm!.set('r', '8');
    await training.runEstimate(training.estimateConfig!);
    expect(training.estimate!.trainableParameters).toBe(smaller * 4);

    training.methodForm!.set('r', '0');
    await training.runEstimate(training.estimateConfig!);
    expect(training.estimateErrorField).toBe('method.r');
    expect(await api().request('runs.list', {})).toEqual([]);
  });
});
