// The Sweeps view against the real service: what it says with no model, a bad grid value shown beside its field, a
// 2×2 fused sweep on a tiny model filling the heatmap with the trials' objectives (best = lowest), the best trial
// opened in Chat, a past sweep reopened, and a long sweep that keeps streaming while the view is closed and is
// cancelled from it.
// Node's typed arrays back in place of jsdom's, before anything trains (see that file).
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import type { SweepsState } from '../../renderer/lib/state/sweeps.svelte.ts';
import SweepsView from '../../renderer/views/SweepsView.svelte';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const model = tinyModelDir('llama3');

let service: ServiceApi;
beforeEach(() => {
  service = serviceApi();
  setApi(service);
});
afterEach(() => {
  setApi(undefined);
  service.close();
});

const rows = Array.from({ length: 24 }, (_, i) => ({ messages: [{ role: 'user', content: `What is ${i} plus one?` }, { role: 'assistant', content: `It is ${i + 1}.` }] }));

const type = (testId: string, value: string) => fireEvent.input(screen.getByTestId(testId), { target: { value } });

const cells = () => screen.queryAllByTestId('heatmap-cell');

/** An app with the tiny model open and one dataset in the store, showing the Sweeps view. */
const openView = async (app = new AppState()) => {
  await app.load();
  app.workspace.model ??= await service.request('models.describe', { path: model! });
  const view = render(SweepsView, { app });
  await waitFor(() => expect(screen.getByTestId('sweep-dataset')).toBeTruthy());
  return { app, view };
};

const defineGrid = async (steps: string) => {
  await type('sweep-r', '2, 4');
  await type('sweep-alpha', '4, 8');
  await type('sweep-steps', steps);
  await type('sweep-micro-batch', '2');
  await type('sweep-max-length', '64');
  await type('sweep-eval-fraction', '0.2');
};

describe('Sweeps view', () => {
  it('says to open a model in Models when none is open', async () => {
    render(SweepsView, { app: new AppState() });
    expect(screen.getByText('No model open')).toBeTruthy();
    expect(screen.getByRole('status').textContent).toContain('Open a model in Models');
    expect(screen.queryByTestId('sweep-start')).toBeNull();
    expect(await screen.findByText(/No sweeps yet/)).toBeTruthy();
  });
});

describe.skipIf(!model && !oracleRequired())('Sweeps view on a tiny model', () => {
  it('shows a bad grid value beside its field and starts nothing', async () => {
    await openView();
    await type('sweep-r', '4, x');
    const error = screen.getByTestId('sweep-r-error');
    expect(error.textContent).toBe("'x' is not a number");
    expect(error.closest('label')!.contains(screen.getByTestId('sweep-r'))).toBe(true);
    expect(screen.getByTestId('sweep-r').getAttribute('aria-invalid')).toBe('true');
    await type('sweep-alpha', '8, 0');
    expect(screen.getByTestId('sweep-alpha-error').textContent).toBe("'0' must be above 0");
    await fireEvent.click(screen.getByTestId('sweep-start'));
    expect(service.sent.some((s) => s.method === 'sweeps.start')).toBe(false);
    expect(screen.queryByTestId('heatmap')).toBeNull();
    await type('sweep-r', '4, 8');
    expect(screen.queryByTestId('sweep-r-error')).toBeNull();
  });

  it('runs a 2×2 fused sweep on a stored dataset: the heatmap fills with the objectives, the best is marked and opens in Chat', async () => {
    const dataset = service.store.datasets.create({ name: 'plus-one', format: 'openai', rows }).dataset;
    const { app, view } = await openView();
    expect((screen.getByTestId('sweep-dataset') as HTMLSelectElement).selectedOptions[0]!.textContent).toBe('plus-one (24 rows)');
    await defineGrid('2');
    expect(screen.getByTestId('sweep-trial-count').textContent).toBe('4 trials');
    await fireEvent.click(screen.getByTestId('sweep-start'));

    // The grid is laid out at once, every cell still without a value.
    expect(cells().map((c) => [c.dataset.r, c.dataset.alpha, c.dataset.value])).toEqual([['2', '4', undefined], ['2', '8', undefined], ['4', '4', undefined], ['4', '8', undefined]]);
    await waitFor(() => expect(screen.getByTestId('sweep-status').dataset.status).toBe('completed'), { timeout: 120_000 });

    const sweep = service.store.sweeps.list()[0]!;
    expect(service.sent.find((s) => s.method === 'datasets.file')?.params).toEqual({ id: dataset.id });
    const trials = service.store.sweeps.trials(sweep.id);
    const objectives = trials.map((t) => t.objective!);
    for (const t of trials) {
      const cell = cells().find((c) => c.dataset.r === String(t.params.r) && c.dataset.alpha === String(t.params.lora_alpha))!;
      expect(Number(cell.dataset.value)).toBe(t.objective);
      expect(cell.textContent).toContain(t.objective!.toFixed(4));
    }
    const best = trials.find((t) => t.isBest)!;
    expect(best.objective).toBe(Math.min(...objectives));
    expect(cells().filter((c) => c.dataset.best).map((c) => Number(c.dataset.value))).toEqual([best.objective]);
    const tableRows = screen.getAllByTestId('sweep-trial-row');
    expect(tableRows.map((r) => r.dataset.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(tableRows.filter((r) => r.classList.contains('best')).map((r) => r.dataset.ordinal)).toEqual([String(best.ordinal)]);
    expect(screen.getByTestId('sweep-best').dataset.ordinal).toBe(String(best.ordinal));
    expect(screen.getByTestId('sweep-status').textContent).toContain(`Best: trial ${best.ordinal}`);
    expect(screen.getByTestId('sweep-past-row').dataset.sweepId).toBe(String(sweep.id));

    await fireEvent.click(screen.getByTestId('sweep-open-chat'));
    expect(app.view).toBe('chat');
    expect(app.workspace.chatAdapters).toEqual([service.store.adapters.list({ runId: best.runId! })[0]!.path]);
    view.unmount();

    // The next launch: the sweep reopens from the history with the same heatmap.
    await openView(new AppState());
    await waitFor(() => expect(screen.getByTestId('sweep-past-open')).toBeTruthy());
    await fireEvent.click(screen.getByTestId('sweep-past-open'));
    await waitFor(() => expect(cells().filter((c) => c.dataset.value !== undefined)).toHaveLength(4));
    expect(cells().map((c) => Number(c.dataset.value)).sort()).toEqual([...objectives].sort());
    expect(cells().find((c) => c.dataset.best)!.dataset.value).toBe(String(best.objective));
    expect(screen.getByTestId('sweep-status').dataset.status).toBe('completed');
  });

  it('keeps a sweep streaming while the view is closed, and cancels it', async () => {
    service.store.datasets.create({ name: 'plus-one', format: 'openai', rows });
    const { app, view } = await openView();
    await defineGrid('400');
    await fireEvent.click(screen.getByTestId('sweep-start'));
    await waitFor(() => expect(screen.getByTestId('sweep-status').dataset.status).toBe('running'), { timeout: 60_000 });
    view.unmount();

    const sweeps = app.area<SweepsState>('sweeps', () => { throw new Error('the area must exist already'); });
    const stepWhenLeft = sweeps.live!.step ?? 0;
    await waitFor(() => expect(sweeps.live!.step).toBeGreaterThan(stepWhenLeft + 1), { timeout: 60_000 });

    render(SweepsView, { app });
    expect(screen.getByTestId('sweep-status').dataset.status).toBe('running');
    expect(screen.getByTestId('sweep-status').textContent).toMatch(/^Running: step \d+ of 400, 4 of 4 trials training/);
    expect(screen.getByTestId('sweep-start').hasAttribute('disabled')).toBe(true);
    await fireEvent.click(screen.getByTestId('sweep-cancel'));
    await waitFor(() => expect(screen.getByTestId('sweep-status').dataset.status).toBe('cancelled'), { timeout: 60_000 });
    expect(screen.getAllByTestId('sweep-trial-row').map((r) => r.dataset.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled']);
    expect(cells().every((c) => c.dataset.value === undefined && c.dataset.status === 'cancelled')).toBe(true);
    expect(screen.queryByTestId('sweep-cancel')).toBeNull();
    expect(screen.queryByTestId('sweep-best')).toBeNull();
    expect(service.store.sweeps.list()[0]!.status).toBe('cancelled');
  });
});
