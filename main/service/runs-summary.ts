// A run as the history table shows it: the run row plus how far it got (its newest train-loss step) and its newest
// train and eval losses, read from the metrics the trainer logs (train-run.ts: 'train/loss', 'eval/loss').
import type { Run, RunFilter, Store } from '../store/index.ts';

export const TRAIN_LOSS = 'train/loss';
export const EVAL_LOSS = 'eval/loss';

export interface RunSummary extends Run {
  /** The newest step with a train loss; 0 before the first step. */
  readonly steps: number;
  /** Optimizer steps the config asks for (training.maxSteps), when it fixes them. */
  readonly plannedSteps: number | null;
  /** null before the first step, or when the loss was not finite (a diverged run). */
  readonly finalLoss: number | null;
  readonly lastEvalLoss: number | null;
}

const finite = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null);

export const runSummaries = (store: Store, filter: RunFilter): RunSummary[] =>
  store.runs.list(filter).map((run) => {
    const latest = store.metrics.latest(run.id);
    const training = run.config.training as { maxSteps?: unknown } | undefined;
    return {
      ...run,
      steps: latest.get(TRAIN_LOSS)?.step ?? 0,
      plannedSteps: typeof training?.maxSteps === 'number' ? training.maxSteps : null,
      finalLoss: finite(latest.get(TRAIN_LOSS)?.value),
      lastEvalLoss: finite(latest.get(EVAL_LOSS)?.value),
    };
  });
