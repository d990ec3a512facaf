// The API contract's requests for sweeps: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; sweep-handlers.ts implements them. (sweeps.start, .list and .show are core requests.)
import * as v from 'valibot';
import type { Sweep, Trial } from '../store/index.ts';
import { id } from './contract-schemas.ts';

export const SWEEP_REQUESTS = {
  /** A sweep with what its trial table and heatmap show: each trial's latest step, losses and adapter. */
  'sweeps.details': v.object({ id }),
} as const;

/** A trial as the Sweeps view lists it: its store row plus what its run logged last. */
export interface TrialDetails extends Trial {
  /** The newest training step its run logged (null before the first). */
  readonly step: number | null;
  /** Training loss at that step. */
  readonly loss: number | null;
  /** The newest eval loss its run logged (for a finished trial: its objective, or where it was pruned). */
  readonly evalLoss: number | null;
  /** Its adapter folder, once saved (completed trials only). */
  readonly adapterPath: string | null;
}

export interface SweepDetails {
  readonly sweep: Sweep;
  readonly trials: readonly TrialDetails[];
}

export interface SweepResults {
  'sweeps.details': SweepDetails;
}
export type SweepEvents = Record<never, never>;
