// The API contract's requests for runs: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; run-handlers.ts implements them.
import * as v from 'valibot';
import { RUN_STATUSES, type MetricSample, type Run } from '../store/index.ts';
import { id, nonNegativeInt, positiveInt } from './contract-schemas.ts';
import type { MethodCatalog } from './method-catalog.ts';
import type { RunSummary } from './runs-summary.ts';

export const RUN_REQUESTS = {
  /** Every method the engine has with its form fields and their defaults (from the methods' own parsers), and the training block's. */
  'methods.list': v.object({}),
  /** runs.list with what a history table shows per run: steps done, final train loss, last eval loss. */
  'runs.summaries': v.object({
    status: v.optional(v.picklist(RUN_STATUSES)),
    limit: v.optional(positiveInt),
    offset: v.optional(nonNegativeInt),
  }),
  /**
   * A running run's new metric points: per series, those after the step the client has (`since`: series name → its
   * last step; a series left out comes whole), so a chart of a long run started elsewhere is followed without
   * sending its whole history every second.
   */
  'runs.metrics': v.object({ id, since: v.optional(v.record(v.string(), v.pipe(v.number(), v.integer()))) }),
} as const;

export interface RunMetricsUpdate {
  readonly run: Run;
  /** Every series the run has, with the samples after `since` (possibly none). */
  readonly metrics: Readonly<Record<string, readonly MetricSample[]>>;
}

export interface RunResults {
  'methods.list': MethodCatalog;
  'runs.summaries': RunSummary[];
  'runs.metrics': RunMetricsUpdate;
}
export type RunEvents = Record<never, never>;
