// The API contract's requests for runs: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; run-handlers.ts implements them.
import * as v from 'valibot';
import { RUN_STATUSES } from '../store/index.ts';
import { nonNegativeInt, positiveInt } from './contract-schemas.ts';
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
} as const;

export interface RunResults {
  'methods.list': MethodCatalog;
  'runs.summaries': RunSummary[];
}
export type RunEvents = Record<never, never>;
