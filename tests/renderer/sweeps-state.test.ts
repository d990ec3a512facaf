// The Sweeps area's state against the real service: the form's checks name the field, a 2×2 fused sweep on a tiny
// model streams its trials into the rows and fills the heatmap with their objectives, the best is the lowest,
// the best trial goes to Chat and Runs, and a past sweep reopens with the same heatmap.
// Node's typed arrays back in place of jsdom's, before anything trains (see that file).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setApi } from '../../renderer/lib/api.ts';
import { AppState } from '../../renderer/lib/state/app.svelte.ts';
import { SweepForm, SweepsState } from '../../renderer/lib/state/sweeps.svelte.ts';
import { oracleRequired, tinyModelDir } from '../helpers/oracle-cache.ts';
import { serviceApi, type ServiceApi } from './helpers/service-api.ts';

const model = tinyModelDir('llama3');

describe('SweepForm', () => {
  it('names the problem of each bad grid value, once the field was changed or a start was tried', () => {
    const form = new SweepForm();
    form.datasetPath = '/data.jsonl';
    expect(form.parsed.plan?.trials).toBe(9);
    form.r = '4, x';
    expect(form.parsed.errors.r).toBe("'x' is not a number");
    expect(form.errorOf('r')).toBeUndefined();
    form.touch('r');
    expect(form.errorOf('r')).toBe("'x' is not a number");
    expect(form.parsed.plan).toBeUndefined();

    const cases: [keyof SweepForm & string, string, string][] = [
      ['r', '2.5', "'2.5' is not a whole number"],
      ['r', '4, 4', '4 is listed twice'],
      ['r', ' , ', 'give at least one value, e.g. 4, 8, 16'],
      ['alpha', '0, 8', "'0' must be above 0"],
      ['lr', '-1e-4', "'-1e-4' must be above 0"],
      ['dropout', '1', "'1' must be below 1"],
      ['targets', 'q_proj, v-proj', "'v-proj' is not a module name (letters, digits, _ and .)"],
      ['steps', '0', "'0' must be above 0"],
      ['evalFraction', '0', "'0' must be above 0"],
      ['name', 'my sweep', 'use letters, digits, - _ and . (it names the trials’ folder)'],
    ];
    for (const [key, value, message] of cases) {
      const f = new SweepForm();
      f.datasetPath = '/data.jsonl';
      (f as unknown as Record<string, string>)[key] = value;
      expect(f.parsed.errors[key as 'r'], `${key} = ${value}`).toBe(message);
    }

    const halving = new SweepForm();
    halving.datasetPath = '/data.jsonl';
    halving.halving = true;
    halving.rungs = '25, 10';
    expect(halving.parsed.errors.rungs).toBe('list the rungs in ascending order');
    halving.rungs = '10, 50';
    expect(halving.parsed.errors.rungs).toBe('a rung must come before the last step (50)');
    halving.rungs = '10';
    halving.mode = 'sequential';
    expect(halving.parsed.errors.rungs).toMatch(/needs fused mode/);

    const noData = new SweepForm();
    expect(noData.parsed.errors.dataset).toBe('pick a dataset, or type the path of a dataset file');
    expect(noData.errorOf('dataset')).toBeUndefined();
    noData.attempted = true;
    expect(noData.errorOf('dataset')).toBe('pick a dataset, or type the path of a dataset file');
  });

  it('sweeps lr, dropout and target modules only when they list several values', () => {
    const form = new SweepForm();
    form.datasetPath = '/data.jsonl';
    form.r = '2 4';
    form.alpha = '8';
    form.lr = '1e-3, 2e-3';
    form.targets = 'q_proj, v_proj; all-linear';
    expect(form.parsed.plan).toMatchObject({ r: [2, 4], alpha: [8], lr: [0.001, 0.002], dropout: [0], targets: [['q_proj', 'v_proj'], 'all-linear'], trials: 8 });
  });
});

describe.skipIf(!model && !oracleRequired())('SweepsState on the real service', () => {
  let service: ServiceApi;
  beforeEach(() => {
    service = serviceApi();
    setApi(service);
  });
  afterEach(() => {
    setApi(undefined);
    service.close();
  });

  const writeDataset = (): string => {
    const file = join(service.dir, 'chat.jsonl');
    const rows = Array.from({ length: 24 }, (_, i) => ({ messages: [{ role: 'user', content: `What is ${i} plus one?` }, { role: 'assistant', content: `It is ${i + 1}.` }] }));
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    return file;
  };

  const openApp = async (): Promise<{ app: AppState; sweeps: SweepsState }> => {
    const app = new AppState();
    await app.load();
    app.workspace.model = await service.request('models.describe', { path: model! });
    const sweeps = app.area('sweeps', (a) => new SweepsState(a));
    await sweeps.load();
    return { app, sweeps };
  };

  const smallGrid = (form: SweepForm, datasetPath: string) => {
    Object.assign(form, { r: '2, 4', alpha: '4, 8', steps: '2', microBatch: '2', maxLength: '64', evalFraction: '0.2', datasetPath, datasetId: undefined });
  };

  it('runs a 2×2 fused sweep: rows stream in, the heatmap fills with the objectives, the best is the lowest', async () => {
    const { app, sweeps } = await openApp();
    smallGrid(sweeps.form, writeDataset());
    // What the state shows after each streamed event: its status and how many heatmap cells hold a value.
    const seen: string[] = [];
    const snapshot = () => `${sweeps.live!.status}:${sweeps.live!.matrix.cells.flat().filter((c) => c.value !== undefined).length}`;
    const request: ServiceApi['request'] = (method, params, options = {}) => {
      const { onEvent } = options;
      return service.request(method, params, onEvent ? { ...options, onEvent: (e) => (onEvent(e), seen.push(snapshot())) } : options);
    };
    setApi({ ...service, request });
    const started = sweeps.start();
    // Before the service answers, the grid is laid out with every trial queued.
    const live = sweeps.live!;
    expect(sweeps.shown).toBe(live);
    expect(live.status).toBe('starting');
    expect(live.trials.map((t) => [t.point.r, t.point.lora_alpha, t.status])).toEqual([[2, 4, 'queued'], [2, 8, 'queued'], [4, 4, 'queued'], [4, 8, 'queued']]);
    expect(live.matrix.cells.flat().map((c) => c.value)).toEqual([undefined, undefined, undefined, undefined]);
    await started;

    expect(sweeps.task.error).toBeUndefined();
    expect(sweeps.task.status).toBe('done');
    expect(live.status).toBe('completed');
    // The cells fill one by one as the trials finish, while the sweep is still running.
    expect(seen[0]).toBe('running:0');
    expect(seen.filter((s) => s.startsWith('running:')).map((s) => Number(s.split(':')[1]))).toEqual(expect.arrayContaining([1, 2, 3, 4]));
    expect(live.matrix.cells.flat().every((c) => c.value !== undefined)).toBe(true);

    const stored = service.store.sweeps.trials(live.sweepId!);
    const objectives = stored.map((t) => t.objective!);
    expect(live.trials.map((t) => t.objective)).toEqual(objectives);
    for (const t of live.trials) expect(t).toMatchObject({ status: 'completed', step: 2, runId: stored[t.ordinal]!.runId });
    expect(live.trials.every((t) => Number.isFinite(t.loss) && t.adapterPath)).toBe(true);
    const cellValues = Object.fromEntries(live.matrix.cells.flat().map((c) => [`${c.r}x${c.alpha}`, c.value]));
    expect(cellValues).toEqual({ '2x4': objectives[0], '2x8': objectives[1], '4x4': objectives[2], '4x8': objectives[3] });
    const lowest = objectives.indexOf(Math.min(...objectives));
    expect(live.best).toBe(lowest);
    expect(service.store.sweeps.best(live.sweepId!)!.ordinal).toBe(lowest);
    expect(live.matrix.cells.flat().filter((c) => c.best).map((c) => c.value)).toEqual([Math.min(...objectives)]);
    expect(sweeps.past.map((s) => s.id)).toEqual([live.sweepId]);

    // The best trial to Chat and to Runs; a picked one instead.
    sweeps.openInChat();
    expect(app.workspace.chatAdapters).toEqual([live.trials[lowest]!.adapterPath]);
    expect(app.view).toBe('chat');
    const other = (lowest + 1) % 4;
    live.selected = other;
    sweeps.showRun();
    expect(app.workspace.runId).toBe(stored[other]!.runId);
    expect(app.view).toBe('runs');
    // The next sweep gets a fresh name (its own folder).
    expect(sweeps.form.name).toMatch(/^sweep-\d{8}-\d{6}$/);

    // A fresh app (the next launch) reopens the sweep from the history with the same heatmap and best.
    const again = await openApp();
    expect(again.sweeps.past).toHaveLength(1);
    await again.sweeps.open(live.sweepId!);
    const reopened = again.sweeps.shown!;
    expect(reopened.status).toBe('completed');
    expect(reopened.best).toBe(lowest);
    expect(reopened.matrix).toEqual(live.matrix);
    expect(reopened.trials.map((t) => [t.step, t.adapterPath])).toEqual(live.trials.map((t) => [2, t.adapterPath]));
  });

  it('runs a sequential sweep one trial after another, each row streaming its steps', async () => {
    const { sweeps } = await openApp();
    smallGrid(sweeps.form, writeDataset());
    Object.assign(sweeps.form, { mode: 'sequential', alpha: '8' });
    const seen = new Set<string>();
    const request: ServiceApi['request'] = (method, params, options = {}) => {
      const { onEvent } = options;
      return service.request(method, params, onEvent ? { ...options, onEvent: (e) => (onEvent(e), seen.add(sweeps.live!.trials.map((t) => `${t.status}@${t.step ?? '-'}`).join(' '))) } : options);
    };
    setApi({ ...service, request });
    await sweeps.start();
    const live = sweeps.live!;
    expect(live.status).toBe('completed');
    expect(live.mode).toBe('sequential');
    // The first trial finishes before the second starts; the second's steps stream in after.
    expect([...seen]).toEqual(expect.arrayContaining(['running@1 queued@-', 'running@2 queued@-', 'completed@2 running@1', 'completed@2 completed@2']));
    expect([...seen].some((s) => s.startsWith('running') && s.endsWith('running@1'))).toBe(false);
    const stored = service.store.sweeps.trials(live.sweepId!);
    expect(live.matrix.cells.flat().map((c) => c.value)).toEqual(stored.map((t) => t.objective));
    expect(live.best).toBe(stored.find((t) => t.isBest)!.ordinal);
  });

  it('shows a service error beside the field it is about', async () => {
    const { sweeps } = await openApp();
    smallGrid(sweeps.form, writeDataset());
    sweeps.form.targets = 'zzz_proj';
    await sweeps.start();
    expect(sweeps.task.status).toBe('failed');
    expect(sweeps.live!.status).toBe('failed');
    expect(sweeps.form.errorOf('targets')).toMatch(/target_modules \["zzz_proj"\] matched no linear layer/);
    sweeps.form.touch('targets');
    expect(sweeps.form.errorOf('targets')).toBeUndefined();

    sweeps.form.targets = 'all-linear';
    sweeps.form.datasetPath = join(service.dir, 'missing.jsonl');
    await sweeps.start();
    expect(sweeps.form.errorOf('dataset')).toContain('missing.jsonl');
  });

  it('says to open a model when none is open, and starts nothing', async () => {
    const { app, sweeps } = await openApp();
    app.workspace.model = undefined;
    smallGrid(sweeps.form, writeDataset());
    await sweeps.start();
    expect(sweeps.error).toBe('No model is open: open a model in Models first.');
    expect(sweeps.live).toBeUndefined();
    expect(service.sent.some((s) => s.method === 'sweeps.start')).toBe(false);
  });
});
