// What the sweeps requests of sweep-contract.ts do (see api-handlers.ts for the handler shape).
import type { Store, Trial } from '../store/index.ts';
import type { AreaHandlers } from './api-handlers.ts';
import type { SWEEP_REQUESTS, SweepDetails, TrialDetails } from './sweep-contract.ts';

/** A logged value, or null where there is none (a diverged step is stored as NaN, which JSON cannot carry). */
const finite = (value: number | undefined): number | null => (value !== undefined && Number.isFinite(value) ? value : null);

const trialDetails = (store: Store, trial: Trial): TrialDetails => {
  if (trial.runId === null) return { ...trial, step: null, loss: null, evalLoss: null, adapterPath: null };
  const latest = store.metrics.latest(trial.runId);
  const train = latest.get('train/loss');
  // A trial's run has at most one adapter: the one the sweep saved when the trial completed.
  const adapter = store.adapters.list({ runId: trial.runId }).at(0);
  return {
    ...trial,
    step: train?.step ?? null,
    loss: finite(train?.value),
    evalLoss: finite(latest.get('eval/loss')?.value),
    adapterPath: adapter?.path ?? null,
  };
};

export const sweepDetails = (store: Store, sweepId: number): SweepDetails => ({
  sweep: store.sweeps.get(sweepId),
  trials: store.sweeps.trials(sweepId).map((t) => trialDetails(store, t)),
});

export const SWEEP_HANDLERS: AreaHandlers<keyof typeof SWEEP_REQUESTS> = {
  'sweeps.details': ({ store, params }) => sweepDetails(store, params.id),
};
