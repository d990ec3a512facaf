// RunsState against the real service: the history with steps and losses, a run's four curves and checkpoints, live
// curves from the Train task's events, polling for a run no event reports, compare (curves and config diff), open
// in chat, and resuming a paused run.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../../renderer/lib/api.ts';
import { RUN_METRICS, RunsState } from '../../renderer/lib/state/runs.svelte.ts';
import { TrainingState } from '../../renderer/lib/state/training.svelte.ts';
import { fillQuickRun, tinyModel, trainBench, trainDirect, type TrainBench } from './train-fixtures.ts';

const WAIT = { timeout: 90_000, interval: 5 };
const metric = (name: string) => RUN_METRICS.find((m) => m.metric === name)!;

describe.skipIf(!tinyModel)('RunsState', () => {
  let bench: TrainBench;
  let runs: RunsState;
  let training: TrainingState;
  let stopWatching: (() => void) | undefined;
  beforeEach(async () => {
    bench = await trainBench();
    training = bench.app.area('training', (a) => new TrainingState(a));
    runs = bench.app.area('runs', (a) => new RunsState(a));
  });
  afterEach(() => {
    stopWatching?.();
    training.dispose();
    bench.close();
  });

  it("lists runs with steps and losses, shows a run's curves and checkpoints, compares two runs, opens one in chat", async () => {
    const slow = await trainDirect(bench, { name: 'slow', lr: 0.001, steps: 6, checkpointEvery: 2 });
    const fast = await trainDirect(bench, { name: 'fast', lr: 0.02, steps: 6, checkpointEvery: 2 });
    await runs.refresh();
    expect(runs.runs.map((r) => [r.name, r.status, r.steps])).toEqual([['fast', 'completed', 6], ['slow', 'completed', 6]]);
    expect(runs.runs.every((r) => typeof r.finalLoss === 'number' && typeof r.lastEvalLoss === 'number')).toBe(true);

    await runs.select(slow.runId);
    expect(runs.series(metric('train/loss')).map((p) => p.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(runs.series(metric('lr'))).toHaveLength(6);
    expect(runs.series(metric('grad_norm'))).toHaveLength(6);
    expect(runs.series(metric('eval/loss')).length).toBeGreaterThan(0);
    expect(runs.details!.checkpoints.map((c) => c.step)).toEqual([4, 6]);

    runs.toggleCompare(slow.runId);
    await runs.compare();
    expect(runs.compareError).toMatch(/at least two/);
    runs.toggleCompare(fast.runId);
    await runs.compare();
    expect(runs.comparison!.differences.map((d) => d.field)).toEqual(expect.arrayContaining(['training.lr', 'name', 'output']));
    expect(runs.comparison!.differences.find((d) => d.field === 'training.lr')!.values).toEqual([0.001, 0.02]);
    const overlaid = runs.compareSeries('train/loss');
    expect(overlaid.map((s) => s.points.length)).toEqual([6, 6]);
    expect(overlaid[0]!.points).not.toEqual(overlaid[1]!.points);

    runs.openInChat(slow.adapterDir!);
    expect(bench.app.workspace.chatAdapters).toEqual([slow.adapterDir]);
    expect(bench.app.view).toBe('chat');
  });

  it("follows the Train task's run live through its events, with the stored points before them", async () => {
    await training.load();
    fillQuickRun(training, bench.datasetPath, { steps: 16 });
    const started = training.start();
    await vi.waitFor(() => expect(training.runId).toBeDefined(), WAIT);
    await runs.select(training.runId!);
    await vi.waitFor(() => expect(training.loss.length).toBeGreaterThanOrEqual(1), WAIT);
    expect(runs.live).toBe(true);
    expect(runs.status).toBe('running');
    const lengths = new Set<number>();
    const watch = setInterval(() => lengths.add(runs.series(metric('train/loss')).length), 2);
    await started;
    clearInterval(watch);
    expect(lengths.size).toBeGreaterThan(2);
    expect(runs.live).toBe(false);
    stopWatching = runs.watch();
    await vi.waitFor(() => expect(runs.details!.run.status).toBe('completed'), WAIT);
    expect(runs.series(metric('train/loss')).map((p) => p.x)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
  });

  it('follows a running run that no Train event reports by polling runs.metrics', async () => {
    const elsewhere = trainDirect(bench, { name: 'elsewhere', lr: 0.01, steps: 40 });
    await vi.waitFor(async () => expect((await api().request('runs.list', { status: 'running' })).length).toBe(1), WAIT);
    await runs.refresh();
    expect(runs.live).toBe(false);
    expect(runs.details?.run.status).toBe('running');
    const sentBefore = bench.service.sent.length;
    stopWatching = runs.watch();
    const counts = new Set<number>();
    await vi.waitFor(() => {
      counts.add(runs.details?.metrics['train/loss']?.length ?? 0);
      expect(runs.details?.run.status).toBe('completed');
    }, { timeout: 90_000, interval: 50 });
    await elsewhere;
    expect(counts.size).toBeGreaterThan(1); // seen growing between polls
    // While it ran, only the new points came (runs.metrics); the whole details once, when it stopped.
    const polled = bench.service.sent.slice(sentBefore).map((r) => r.method);
    expect(polled).toContain('runs.metrics');
    expect(polled.filter((m) => m === 'runs.show').length).toBeLessThanOrEqual(1);
    expect(runs.series(metric('train/loss')).map((p) => p.x)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(runs.runs[0]).toMatchObject({ status: 'completed', steps: 40 });
  });

  it('resumes a paused run through the Train task', async () => {
    await training.load();
    fillQuickRun(training, bench.datasetPath, { steps: 20 });
    const started = training.start();
    await vi.waitFor(() => expect(training.loss.length).toBeGreaterThanOrEqual(2), WAIT);
    await training.pause();
    await started;
    await runs.refresh();
    const run = runs.runs[0]!;
    expect(run.status).toBe('paused');
    expect(runs.canResume(run)).toBe(true);
    await runs.resume(runs.details!.run);
    expect(runs.actionError).toBeUndefined();
    expect(runs.details!.run.status).toBe('completed');
    expect(runs.runs[0]).toMatchObject({ id: run.id, status: 'completed', steps: 20 });
    expect(runs.canResume(runs.details!.run)).toBe(false);
  });
});
