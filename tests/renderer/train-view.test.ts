// The Train view against the real service training a tiny Llama, driven through its inputs and buttons by the
// data-testids the end-to-end test uses: the loss chart's points grow as steps stream in, pause → resume, cancel,
// a bad field's error shows beside that field, the estimate shows before starting, and leaving the view keeps the run.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrainingState } from '../../renderer/lib/state/training.svelte.ts';
import TrainView from '../../renderer/views/TrainView.svelte';
import { tinyModel, trainBench, type TrainBench } from './train-fixtures.ts';

const WAIT = { timeout: 90_000, interval: 10 };
const points = () => Number(screen.getByTestId('chart-train-loss').getAttribute('data-points'));
const status = () => screen.getByTestId('train-status').getAttribute('data-status');
const type = (testId: string, value: string) => fireEvent.input(screen.getByTestId(testId), { target: { value } });

describe.skipIf(!tinyModel)('Train view', () => {
  let bench: TrainBench;
  beforeEach(async () => {
    bench = await trainBench();
  });
  afterEach(() => {
    bench.app.area('training', (a) => new TrainingState(a)).dispose();
    bench.close();
  });

  /** The form for a quick LoRA run, filled through its inputs. */
  const fill = async (steps: number) => {
    const method = await screen.findByTestId('train-method', {}, WAIT);
    await fireEvent.change(method, { target: { value: 'LORA' } });
    expect((screen.getByTestId('train-dataset') as HTMLSelectElement).value).toBe('file');
    await type('train-dataset-path', bench.datasetPath);
    await type('train-steps', String(steps));
    await type('train-method-r', '2');
    await type('train-method-target_modules', 'q_proj, v_proj');
    await type('train-training-microBatchSize', '2');
    await type('train-training-maxLength', '32');
    await type('train-training-evalEvery', '2');
    await type('train-training-lr', '0.01');
    await type('train-dataset-evalFraction', '0.25');
  };

  it('says to open a model first when none is open', async () => {
    bench.app.workspace.model = undefined;
    render(TrainView, { app: bench.app });
    expect((await screen.findByRole('status')).textContent).toContain('Open a model in Models');
  });

  it('lists every method with its fields and explanations, and shows the estimate before starting', async () => {
    render(TrainView, { app: bench.app });
    const select = (await screen.findByTestId('train-method', {}, WAIT)) as HTMLSelectElement;
    const options = [...select.options].map((o) => o.value);
    expect(options).toEqual(expect.arrayContaining(['LORA', 'ADALORA', 'VERA', 'IA3', 'PROMPT_TUNING', 'PREFIX_TUNING', 'FULL', 'BOTTLENECK']));
    expect((screen.getByTestId('train-method-r') as HTMLInputElement).value).toBe('8');
    await fireEvent.change(select, { target: { value: 'VERA' } });
    expect((screen.getByTestId('train-method-r') as HTMLInputElement).value).toBe('256');
    expect(screen.getByText(/Shared frozen random projections/)).toBeTruthy();
    await fireEvent.change(select, { target: { value: 'LORA' } });
    await fill(6);
    const memory = await within(screen.getByTestId('train-estimate')).findByTestId('train-estimate-memory', {}, WAIT);
    expect(memory.textContent).toMatch(/\d+(\.\d)? (KB|MB|GB)/);
    expect(screen.getByTestId('train-estimate-step').textContent).toMatch(/\d+ (ms|s)/);
  });

  it('trains: the loss chart grows as steps stream in, then says completed', async () => {
    render(TrainView, { app: bench.app });
    await fill(6);
    const seen = new Set<number>();
    const watch = setInterval(() => seen.add(points()), 2);
    await fireEvent.click(screen.getByTestId('train-start'));
    await waitFor(() => expect(status()).toBe('completed'), WAIT);
    clearInterval(watch);
    seen.add(points());
    expect(points()).toBeGreaterThanOrEqual(6 + 1); // 6 train-loss points and the eval points
    expect([...seen].filter((n) => n > 0 && n < points()).length).toBeGreaterThan(1);
    expect(screen.getByTestId('train-status').textContent).toContain('step 6 / 6');
    expect(bench.app.workspace.runId).toBeDefined();
  });

  it('pauses, resumes to the end, and cancels, with the buttons', async () => {
    render(TrainView, { app: bench.app });
    await fill(24);
    expect((screen.getByTestId('train-resume') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByTestId('train-start'));
    await waitFor(() => expect(points()).toBeGreaterThanOrEqual(2), WAIT);
    await fireEvent.click(screen.getByTestId('train-pause'));
    await waitFor(() => expect(status()).toBe('paused'), WAIT);
    const atPause = points();
    await fireEvent.click(screen.getByTestId('train-resume'));
    await waitFor(() => expect(status()).toBe('completed'), WAIT);
    expect(points()).toBeGreaterThan(atPause);
    expect(screen.getByTestId('train-status').textContent).toContain('step 24 / 24');

    await type('train-steps', '300');
    await fireEvent.click(screen.getByTestId('train-start'));
    await waitFor(() => expect(points()).toBeGreaterThanOrEqual(1), WAIT);
    await fireEvent.click(screen.getByTestId('train-cancel'));
    await waitFor(() => expect(status()).toBe('cancelled'), WAIT);
    expect((screen.getByTestId('train-resume') as HTMLButtonElement).disabled).toBe(true);
  });

  it('shows a bad field’s error beside that field', async () => {
    render(TrainView, { app: bench.app });
    await fill(4);
    await type('train-training-lr', '0');
    await fireEvent.click(screen.getByTestId('train-start'));
    await waitFor(() => expect(status()).toBe('failed'), WAIT);
    const lrField = screen.getByTestId('train-training-lr').closest('.field') as HTMLElement;
    expect(within(lrField).getByRole('alert').textContent).toMatch(/training\.lr must be positive/);
    expect(within(screen.getByTestId('train-steps').closest('.field') as HTMLElement).queryByRole('alert')).toBeNull();
  });

  it('keeps a running run when the view is left and opened again', async () => {
    const first = render(TrainView, { app: bench.app });
    await fill(12);
    await fireEvent.click(screen.getByTestId('train-start'));
    await waitFor(() => expect(points()).toBeGreaterThanOrEqual(1), WAIT);
    first.unmount();
    render(TrainView, { app: bench.app });
    await waitFor(() => expect(status()).toBe('completed'), WAIT);
    expect(points()).toBeGreaterThanOrEqual(12);
  });
});
