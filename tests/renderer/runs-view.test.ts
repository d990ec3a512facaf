// The Runs view against the real service, by the data-testids the end-to-end test uses: the history rows, a run's
// four charts and checkpoints, compare of two runs (curves overlaid, configs diffed), open in chat, and a run the
// Train task is running shown live.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrainingState } from '../../renderer/lib/state/training.svelte.ts';
import RunsView from '../../renderer/views/RunsView.svelte';
import { fillQuickRun, tinyModel, trainBench, trainDirect, type TrainBench } from './train-fixtures.ts';

const WAIT = { timeout: 90_000, interval: 10 };
const pointsOf = (testId: string) => Number(screen.getByTestId(testId).getAttribute('data-points'));

describe.skipIf(!tinyModel)('Runs view', () => {
  let bench: TrainBench;
  beforeEach(async () => {
    bench = await trainBench();
  });
  afterEach(() => {
    bench.app.area('training', (a) => new TrainingState(a)).dispose();
    bench.close();
  });

  it('says to start a run in Train when the history is empty', async () => {
    render(RunsView, { app: bench.app });
    expect((await screen.findByRole('status')).textContent).toContain('Start one in Train');
  });

  it("shows the history, a run's charts and checkpoints, compares two runs and opens one in chat", async () => {
    const a = await trainDirect(bench, { name: 'lr-small', lr: 0.001, steps: 6, checkpointEvery: 3 });
    await trainDirect(bench, { name: 'lr-large', lr: 0.02, steps: 6, checkpointEvery: 3 });
    render(RunsView, { app: bench.app });
    await waitFor(() => expect(screen.getAllByTestId('run-row')).toHaveLength(2), WAIT);
    const rows = screen.getAllByTestId('run-row');
    expect(rows.map((r) => within(r).getByTestId('run-status').textContent)).toEqual(['completed', 'completed']);
    expect(rows[1]!.textContent).toContain('6 / 6');

    await fireEvent.click(rows[1]!);
    await waitFor(() => expect(screen.getByTestId('run-details').getAttribute('data-run-id')).toBe(String(a.runId)), WAIT);
    expect(pointsOf('chart-run-loss')).toBe(6);
    expect(pointsOf('chart-run-lr')).toBe(6);
    expect(pointsOf('chart-run-grad-norm')).toBe(6);
    expect(pointsOf('chart-run-eval-loss')).toBeGreaterThan(0);
    expect(screen.getAllByTestId('run-checkpoint').map((c) => c.getAttribute('data-step'))).toEqual(['3', '6']);

    const compare = screen.getByTestId('runs-compare') as HTMLButtonElement;
    expect(compare.disabled).toBe(true);
    for (const box of screen.getAllByTestId('run-compare-check')) await fireEvent.click(box);
    expect(compare.disabled).toBe(false);
    await fireEvent.click(compare);
    const diff = await screen.findByTestId('runs-diff', {}, WAIT);
    const lrRow = diff.querySelector('[data-field="training.lr"]')!;
    expect(lrRow.textContent).toContain('0.02');
    expect(lrRow.textContent).toContain('0.001');
    expect(pointsOf('chart-compare-loss')).toBe(12);

    await fireEvent.click(screen.getByTestId('run-open-chat'));
    expect(bench.app.view).toBe('chat');
    expect(bench.app.workspace.chatAdapters).toEqual([a.adapterDir]);
  });

  it("shows the Train task's run live: its row's status and the growing loss chart", async () => {
    const training = bench.app.area('training', (app) => new TrainingState(app));
    await training.load();
    fillQuickRun(training, bench.datasetPath, { steps: 16 });
    const started = training.start();
    await waitFor(() => expect(training.loss.length).toBeGreaterThanOrEqual(1), WAIT);
    bench.app.workspace.runId = training.runId;
    render(RunsView, { app: bench.app });
    await waitFor(() => expect(screen.getByTestId('run-details').getAttribute('data-run-id')).toBe(String(training.runId)), WAIT);
    const statuses = new Set<string | null>();
    const seen = new Set<number>();
    const watch = setInterval(() => {
      seen.add(pointsOf('chart-run-loss'));
      statuses.add(within(screen.getByTestId('run-row')).getByTestId('run-status').textContent);
    }, 2);
    await started;
    clearInterval(watch);
    expect(statuses.has('running')).toBe(true);
    expect(seen.size).toBeGreaterThan(1);
    await waitFor(() => expect(within(screen.getByTestId('run-row')).getByTestId('run-status').textContent).toBe('completed'), WAIT);
    await waitFor(() => expect(pointsOf('chart-run-loss')).toBe(16), WAIT);
  });
});
