// The Runs view's state (app.area('runs')): the history with live status, the chosen run's curves, checkpoints and
// adapter, and a comparison of two or more runs. A run the Train task is running is followed through that task's
// events; any other running run (a CLI run writing the same history, a run of another window) by polling runs.metrics
// for the points it does not have yet.
import { api, messageOf, type ApiResults, type RunDetails } from '../api.ts';
import type { AppState } from './app.svelte.ts';
import { TrainingState, type Point } from './training.svelte.ts';

export type RunSummary = ApiResults['runs.summaries'][number];
export type RunComparison = ApiResults['runs.compare'];

/** The curves of a run: the store's metric name (train-run.ts logs them), the Train task's live series, the chart. */
export const RUN_METRICS = [
  { metric: 'train/loss', live: 'loss', title: 'Loss', testId: 'chart-run-loss' },
  { metric: 'eval/loss', live: 'evalLoss', title: 'Eval loss', testId: 'chart-run-eval-loss' },
  { metric: 'lr', live: 'lr', title: 'Learning rate', testId: 'chart-run-lr' },
  { metric: 'grad_norm', live: 'gradNorm', title: 'Gradient norm', testId: 'chart-run-grad-norm' },
] as const;
export type RunMetric = (typeof RUN_METRICS)[number];

const POLL_MS = 1000;

const pointsOf = (details: RunDetails | undefined, metric: string): Point[] =>
  (details?.metrics[metric] ?? []).filter((s) => Number.isFinite(s.value)).map((s) => ({ x: s.step, y: s.value }));

export class RunsState {
  runs = $state<RunSummary[]>([]);
  loading = $state(false);
  loadError = $state<string | undefined>(undefined);
  selectedId = $state<number | undefined>(undefined);
  details = $state<RunDetails | undefined>(undefined);
  detailsError = $state<string | undefined>(undefined);
  compareIds = $state<number[]>([]);
  comparison = $state<RunComparison | undefined>(undefined);
  compareDetails = $state<RunDetails[]>([]);
  compareError = $state<string | undefined>(undefined);
  comparing = $state(false);
  actionError = $state<string | undefined>(undefined);

  constructor(private readonly app: AppState) {}

  /** The Train area's state: its task's events are the live curves of the run it trains. */
  get training(): TrainingState {
    return this.app.area('training', (a) => new TrainingState(a));
  }

  async refresh(): Promise<void> {
    this.loading = true;
    try {
      this.runs = await api().request('runs.summaries', {});
      this.loadError = undefined;
      if (this.selectedId === undefined) {
        const first = this.runs.find((r) => r.id === this.app.workspace.runId) ?? this.runs[0];
        if (first) await this.select(first.id);
      }
    } catch (err) {
      this.loadError = messageOf(err);
    } finally {
      this.loading = false;
    }
  }

  async select(id: number): Promise<void> {
    if (this.selectedId !== id) this.details = undefined;
    this.selectedId = id;
    this.app.workspace.runId = id;
    await this.reloadDetails();
  }

  private async reloadDetails(): Promise<void> {
    const id = this.selectedId;
    if (id === undefined) return;
    try {
      const details = await api().request('runs.show', { id });
      if (this.selectedId !== id) return;
      this.details = details;
      this.detailsError = undefined;
    } catch (err) {
      this.detailsError = messageOf(err);
    }
  }

  /**
   * A run that another window or the CLI is training: only the points after those already here (runs.metrics), then
   * its whole details once it stops (checkpoints, adapters).
   */
  private async followDetails(): Promise<void> {
    const id = this.selectedId;
    const details = this.details;
    if (id === undefined || !details || details.run.id !== id) return;
    try {
      const since = Object.fromEntries(Object.entries(details.metrics).flatMap(([name, samples]) => (samples.length ? [[name, samples.at(-1)!.step]] : [])));
      const update = await api().request('runs.metrics', { id, since });
      if (this.selectedId !== id || this.details !== details) return;
      const metrics = { ...details.metrics };
      for (const [name, samples] of Object.entries(update.metrics)) if (samples.length || !metrics[name]) metrics[name] = [...(metrics[name] ?? []), ...samples];
      this.details = { ...details, run: update.run, metrics };
      this.detailsError = undefined;
      if (update.run.status !== 'running') await this.reloadDetails();
    } catch (err) {
      this.detailsError = messageOf(err);
    }
  }

  /** Whether the chosen run is the one the Train task is running now (its curves then come from the task's events). */
  get live(): boolean {
    return this.training.running && this.selectedId !== undefined && this.training.runId === this.selectedId;
  }

  /** The chosen run's status, live where the Train task runs it. */
  get status(): string | undefined {
    return this.live ? 'running' : this.details?.run.status;
  }

  /** A curve of the chosen run: the store's points, continued by the Train task's events while it runs this run. */
  series(m: RunMetric): Point[] {
    const stored = pointsOf(this.details, m.metric);
    if (!this.live) return stored;
    const events = this.training[m.live];
    const from = events[0]?.x ?? Infinity;
    return [...stored.filter((p) => p.x < from), ...events];
  }

  /** Polls while something runs that no event reports: the chosen run's details, and the list's statuses. */
  watch(): () => void {
    const timer = setInterval(() => {
      const status = this.details?.run.status;
      if (status === 'running' && !this.live) void this.followDetails();
      if (this.training.running || this.runs.some((r) => r.status === 'running' || r.status === 'queued')) void this.refresh();
    }, POLL_MS);
    return () => clearInterval(timer);
  }

  toggleCompare(id: number): void {
    this.compareIds = this.compareIds.includes(id) ? this.compareIds.filter((x) => x !== id) : [...this.compareIds, id];
  }

  /** Curves overlaid (every chosen run's runs.show) and configs diffed (runs.compare). */
  async compare(): Promise<void> {
    const ids = [...this.compareIds];
    if (ids.length < 2) {
      this.compareError = 'Tick at least two runs to compare them.';
      return;
    }
    this.comparing = true;
    try {
      const [comparison, ...details] = await Promise.all([api().request('runs.compare', { ids }), ...ids.map((id) => api().request('runs.show', { id }))]);
      this.comparison = comparison;
      this.compareDetails = details;
      this.compareError = undefined;
    } catch (err) {
      this.compareError = messageOf(err);
    } finally {
      this.comparing = false;
    }
  }

  closeComparison(): void {
    this.comparison = undefined;
    this.compareDetails = [];
  }

  /** One series per compared run, for one metric. */
  compareSeries(metric: string): { label: string; points: Point[] }[] {
    return this.compareDetails.map((d) => ({ label: `${d.run.name} (#${d.run.id})`, points: pointsOf(d, metric) }));
  }

  /** The run's adapter in Chat, beside the base model. */
  openInChat(adapterPath: string): void {
    this.app.workspace.chatAdapters = [adapterPath];
    this.app.open('chat');
  }

  /** Paused (or interrupted: its process ended) runs continue from their newest checkpoint. */
  canResume(run: { readonly status: string } | undefined): boolean {
    return run?.status === 'paused' && !this.training.running;
  }

  /** Continues the run through the Train task (so Train shows it too); its curves here go live. */
  async resume(run: { readonly id: number; readonly config: unknown }): Promise<void> {
    this.actionError = undefined;
    const done = this.training.resumeRun(run);
    await this.select(run.id);
    await done;
    if (this.training.task.error) this.actionError = this.training.task.error;
    await this.refresh();
    await this.reloadDetails();
  }
}
