// The Sweeps area: the form that defines a grid over r and alpha (and, with several values, lr, dropout and target
// modules), the running sweep with its trials streaming in, past sweeps reopened from the history, and the trial
// picked (the best unless the user picks another) to open in Chat or Runs. One SweepsState lives in
// app.area('sweeps'), so a sweep keeps streaming while another view is open.
import { heatmapOf, type HeatmapMatrix, type TrialState } from '../../components/sweeps/heatmap.ts';
import { formFieldOfServiceError, gridPoints, spaceOf, sweepConfigOf } from '../../components/sweeps/sweep-plan.ts';
import { api, messageOf, type ApiEvent, type ApiResults } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { SweepForm } from './sweeps-form.svelte.ts';
import { Task } from './task.svelte.ts';

export { SweepForm };

type SweepEvent = ApiEvent<'sweeps.start'>;
type SweepOutcome = ApiResults['sweeps.start'];
type SweepDetails = ApiResults['sweeps.details'];
export type SweepInfo = ApiResults['sweeps.list'][number];
export type DatasetInfo = ApiResults['datasets.list'][number];
export type SweepStatus = SweepInfo['status'] | 'starting';

export interface TrialRow {
  readonly ordinal: number;
  /** Its point in the search space: { r, lora_alpha, lr?, lora_dropout?, target_modules? }. */
  point: Readonly<Record<string, unknown>>;
  runId?: number | undefined;
  status: TrialState;
  step?: number | undefined;
  loss?: number | undefined;
  evalLoss?: number | undefined;
  /** The final eval loss the sweep ranks by. */
  objective?: number | undefined;
  prunedAtStep?: number | undefined;
  adapterPath?: string | undefined;
}

const finite = (x: number | null | undefined): number | undefined => (x !== null && x !== undefined && Number.isFinite(x) ? x : undefined);

/** The finished trial with the lowest objective (what the service will mark best), if any. */
export const bestFinished = (trials: readonly TrialRow[]): number | undefined =>
  trials.reduce<TrialRow | undefined>((m, t) => (t.status === 'completed' && t.objective !== undefined && (m === undefined || t.objective < m.objective!) ? t : m), undefined)?.ordinal;

/** One sweep as the view shows it: live (streaming) or read back from the history. */
export class SweepRecord {
  sweepId = $state<number | undefined>(undefined);
  status = $state<SweepStatus>('starting');
  trials = $state<TrialRow[]>([]);
  /** Steps each trial trains. */
  totalSteps = $state<number | undefined>(undefined);
  /** Fused mode: the step all running trials are at, and the time left. */
  step = $state<number | undefined>(undefined);
  etaSeconds = $state<number | undefined>(undefined);
  messages = $state<string[]>([]);
  error = $state<string | undefined>(undefined);
  /** The best trial as the service marked it when the sweep ended. */
  markedBest = $state<number | undefined>(undefined);
  /** A trial the user picked in the table or the heatmap, instead of the best. */
  selected = $state<number | undefined>(undefined);

  readonly best = $derived(this.markedBest ?? bestFinished(this.trials));
  readonly picked = $derived(this.selected ?? this.best);
  readonly matrix: HeatmapMatrix = $derived(
    heatmapOf(
      this.trials.map((t) => ({ ordinal: t.ordinal, r: this.rOf(t), alpha: this.alphaOf(t), status: t.status, objective: t.objective, prunedAtStep: t.prunedAtStep, evalLoss: t.evalLoss })),
      this.best,
    ),
  );
  /** 0…1: each trial's share of its steps (finished trials count whole). */
  readonly progress = $derived.by(() => {
    if (!this.trials.length || !this.totalSteps) return undefined;
    const part = (t: TrialRow) => (t.status === 'queued' || t.status === 'running' ? Math.min(1, (t.step ?? 0) / this.totalSteps!) : 1);
    return this.trials.reduce((n, t) => n + part(t), 0) / this.trials.length;
  });
  readonly running = $derived(this.status === 'starting' || this.status === 'running');

  constructor(
    readonly name: string,
    readonly mode: 'fused' | 'sequential',
    /** The r and alpha of the sweep's method, for trials whose point leaves them out (a sweep over lr only). */
    private readonly base: { readonly r: number; readonly alpha: number },
  ) {}

  rOf(t: TrialRow): number {
    return Number(t.point.r ?? this.base.r);
  }
  alphaOf(t: TrialRow): number {
    return Number(t.point.lora_alpha ?? this.base.alpha);
  }

  trial(ordinal: number | undefined): TrialRow | undefined {
    return ordinal === undefined ? undefined : this.trials.find((t) => t.ordinal === ordinal);
  }

  /** A sweep about to start: its trials queued, in the order the service will number them. */
  static starting(o: { name: string; mode: 'fused' | 'sequential'; points: readonly Record<string, unknown>[]; totalSteps: number; base: { r: number; alpha: number } }): SweepRecord {
    const record = new SweepRecord(o.name, o.mode, o.base);
    record.totalSteps = o.totalSteps;
    record.trials = o.points.map((point, ordinal) => ({ ordinal, point, status: 'queued' }));
    return record;
  }

  /** A sweep from the history. */
  static fromDetails({ sweep, trials }: SweepDetails): SweepRecord {
    const config = sweep.config as { method?: { r?: unknown; lora_alpha?: unknown }; training?: { maxSteps?: unknown } };
    const record = new SweepRecord(sweep.name, sweep.mode, { r: Number(config.method?.r ?? 8), alpha: Number(config.method?.lora_alpha ?? 8) });
    record.sweepId = sweep.id;
    record.status = sweep.status;
    record.error = sweep.error ?? undefined;
    record.totalSteps = typeof config.training?.maxSteps === 'number' ? config.training.maxSteps : undefined;
    record.trials = trials.map((t) => ({
      ordinal: t.ordinal, point: t.params, status: t.status,
      runId: t.runId ?? undefined, step: t.step ?? undefined, loss: finite(t.loss), evalLoss: finite(t.evalLoss),
      objective: t.status === 'completed' ? finite(t.objective) : undefined, prunedAtStep: t.prunedAtStep ?? undefined,
      adapterPath: t.adapterPath ?? undefined,
    }));
    record.markedBest = trials.find((t) => t.isBest)?.ordinal;
    return record;
  }

  /** One streamed event of sweeps.start. */
  apply(e: SweepEvent): void {
    if (e.type === 'sweep') {
      this.sweepId = e.sweepId;
      if (this.status === 'starting') this.status = 'running';
      this.messages.push(e.message);
      return;
    }
    if (e.type === 'progress') {
      this.step = e.event.step;
      this.totalSteps = e.event.totalSteps;
      this.etaSeconds = e.event.etaSeconds;
      return;
    }
    const row = this.trial(e.ordinal);
    if (!row) return;
    if (e.type === 'trial-done') {
      row.status = e.status;
      row.objective = e.status === 'completed' ? e.objective : undefined;
      if (e.objective !== undefined) row.evalLoss = e.objective;
      return;
    }
    row.runId = e.runId;
    if (row.status === 'queued') row.status = 'running';
    const ev = e.event;
    if ((ev.type === 'step' && 'loss' in ev) || ev.type === 'trial-step') {
      row.step = ev.step;
      row.loss = ev.loss;
      if ('totalSteps' in ev) this.totalSteps = ev.totalSteps;
    } else if (ev.type === 'eval' || ev.type === 'trial-eval') {
      row.evalLoss = ev.loss;
    } else if (ev.type === 'pruned') {
      row.prunedAtStep = ev.step;
      row.evalLoss = ev.evalLoss;
    }
  }

  /** The service's answer: every trial's end, its adapter, the best. */
  finish(outcome: SweepOutcome): void {
    this.sweepId = outcome.sweepId;
    for (const s of outcome.trials) {
      const row = this.trial(s.ordinal);
      if (!row) continue;
      row.point = s.point as Record<string, unknown>;
      row.runId = s.runId;
      row.status = s.status;
      row.objective = s.status === 'completed' ? s.objective : undefined;
      if (s.prunedAtStep !== undefined) row.prunedAtStep = s.prunedAtStep;
      row.adapterPath = s.adapterDir;
    }
    this.markedBest = outcome.best;
    this.status = outcome.trials.some((t) => t.status === 'cancelled') ? 'cancelled' : 'completed';
  }

  /** Points as the service numbered them (they match the form's grid; this makes sure). */
  syncPoints(details: SweepDetails): void {
    for (const t of details.trials) {
      const row = this.trial(t.ordinal);
      if (row) row.point = t.params;
    }
  }
}

export class SweepsState {
  readonly form = new SweepForm();
  datasets = $state<DatasetInfo[]>([]);
  past = $state<SweepInfo[]>([]);
  /** Why the lists could not be loaded. */
  loadError = $state<string | undefined>(undefined);
  /** The sweep started here (running or ended). */
  live = $state<SweepRecord | undefined>(undefined);
  /** The sweep on screen: the live one or one opened from the history. */
  shown = $state<SweepRecord | undefined>(undefined);
  /** A problem starting or opening that belongs to no field. */
  error = $state<string | undefined>(undefined);
  readonly task = new Task('sweeps.start', (e) => this.onEvent(e));
  private loaded = false;
  /** The workspace's dataset when the list was last loaded. */
  private followedDataset: number | undefined;

  /** Between Start and the request: the dataset file and the output folder are being settled. */
  private preparing = $state(false);
  private cancelBeforeStart = false;

  constructor(private readonly app: AppState) {}

  get running(): boolean {
    return this.preparing || this.task.running;
  }

  /** Datasets and past sweeps, the first time the view opens (again with force). */
  async load(force = false): Promise<void> {
    if (this.loaded && !force) return;
    this.loaded = true;
    try {
      const [datasets, past] = await Promise.all([api().request('datasets.list', {}), api().request('sweeps.list', {})]);
      this.datasets = datasets;
      this.past = past;
      this.loadError = undefined;
      // Follow the dataset being worked on in Datasets when it changed; else keep the choice while it exists.
      const wanted = this.app.workspace.datasetId;
      const form = this.form;
      if (wanted !== this.followedDataset && datasets.some((d) => d.id === wanted)) form.datasetId = wanted;
      else if (form.datasetId !== undefined && !datasets.some((d) => d.id === form.datasetId)) form.datasetId = undefined;
      if (form.datasetId === undefined && form.datasetPath === '') form.datasetId = datasets[0]?.id;
      this.followedDataset = wanted;
    } catch (err) {
      this.loadError = messageOf(err);
      this.loaded = false;
    }
  }

  private onEvent(e: SweepEvent): void {
    const live = this.live;
    if (!live) return;
    const first = e.type === 'sweep' && live.sweepId === undefined;
    live.apply(e);
    if (first) {
      void api().request('sweeps.details', { id: e.sweepId }).then((d) => live.syncPoints(d), () => undefined);
      void this.refreshPast();
    }
  }

  async refreshPast(): Promise<void> {
    try {
      this.past = await api().request('sweeps.list', {});
    } catch (err) {
      this.loadError = messageOf(err);
    }
  }

  /** Starts the form's sweep; resolves when it has ended (or could not start). */
  async start(): Promise<void> {
    const form = this.form;
    form.attempted = true;
    this.error = undefined;
    if (this.running) return;
    const model = this.app.workspace.model;
    if (!model) {
      this.error = 'No model is open: open a model in Models first.';
      return;
    }
    const plan = form.parsed.plan;
    if (!plan) return;
    if (!form.output.trim() && this.past.some((s) => s.name === plan.name)) {
      form.serviceErrors = { ...form.serviceErrors, name: `a sweep named ${plan.name} exists; its trials' folder would be overwritten: choose another name` };
      return;
    }
    // The grid shows at once, every trial queued, while the dataset file and the model are made ready.
    const record = SweepRecord.starting({ name: plan.name, mode: plan.mode, points: gridPoints(spaceOf(plan)), totalSteps: plan.steps, base: { r: plan.r[0]!, alpha: plan.alpha[0]! } });
    this.live = record;
    this.shown = record;
    this.preparing = true;
    this.cancelBeforeStart = false;
    let datasetPath: string | undefined;
    let output: string | undefined;
    try {
      datasetPath = await this.datasetPath();
      output = datasetPath === undefined ? undefined : form.output.trim() || (await this.defaultOutput(plan.name));
    } finally {
      this.preparing = false;
    }
    if (this.cancelBeforeStart) {
      this.cancelBeforeStart = false;
      record.status = 'cancelled';
      return;
    }
    if (datasetPath === undefined || output === undefined) {
      record.status = 'failed';
      record.error = form.serviceErrors.dataset ?? form.serviceErrors.output;
      return;
    }
    const outcome = await this.task.run({ config: sweepConfigOf(plan, { model: model.path, datasetPath, output }) });
    if (outcome) record.finish(outcome);
    else {
      record.status = this.task.status === 'cancelled' ? 'cancelled' : 'failed';
      record.error = this.task.error;
      const field = formFieldOfServiceError(this.task.error ?? '', { field: this.task.errorField, datasetPath });
      if (field) form.serviceErrors = { ...form.serviceErrors, [field]: this.task.error };
    }
    form.rename();
    await this.refreshPast();
  }

  async cancel(): Promise<void> {
    if (this.preparing) this.cancelBeforeStart = true;
    else await this.task.cancel();
  }

  /** Shows a sweep from the history (the live one as it is, still streaming). */
  async open(sweepId: number): Promise<void> {
    this.error = undefined;
    if (this.live?.sweepId === sweepId) {
      this.shown = this.live;
      return;
    }
    try {
      this.shown = SweepRecord.fromDetails(await api().request('sweeps.details', { id: sweepId }));
    } catch (err) {
      this.error = messageOf(err);
    }
  }

  /** Back to the sweep started here. */
  showLive(): void {
    if (this.live) this.shown = this.live;
  }

  /** The picked trial's adapter in Chat, beside the base model. */
  openInChat(ordinal?: number): void {
    const trial = this.shown?.trial(ordinal ?? this.shown.picked);
    if (!trial?.adapterPath) return;
    this.app.workspace.chatAdapters = [trial.adapterPath];
    this.app.open('chat');
  }

  /** The picked trial's run (its curves, config, checkpoints) in Runs. */
  showRun(ordinal?: number): void {
    const trial = this.shown?.trial(ordinal ?? this.shown.picked);
    if (trial?.runId === undefined) return;
    this.app.workspace.runId = trial.runId;
    this.app.open('runs');
  }

  /** The dataset file the sweep reads: the chosen dataset's head version written as JSON Lines, or a typed path. */
  private async datasetPath(): Promise<string | undefined> {
    const form = this.form;
    if (form.datasetId === undefined) return form.datasetPath.trim();
    try {
      return (await api().request('datasets.file', { id: form.datasetId })).path;
    } catch (err) {
      form.serviceErrors = { ...form.serviceErrors, dataset: messageOf(err) };
      return undefined;
    }
  }

  /** <dataDir>/sweeps/<name>, beside the store's other files. */
  private async defaultOutput(name: string): Promise<string | undefined> {
    if (!this.app.info) await this.app.load();
    const dataDir = this.app.info?.dataDir;
    if (!dataDir || dataDir === ':memory:') {
      this.form.serviceErrors = { ...this.form.serviceErrors, output: 'the service keeps no data folder: give an output folder for the trials' };
      return undefined;
    }
    const sep = dataDir.includes('\\') && !dataDir.includes('/') ? '\\' : '/';
    return [dataDir.replace(/[\\/]+$/, ''), 'sweeps', name].join(sep);
  }
}

