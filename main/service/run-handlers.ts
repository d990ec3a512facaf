// What the runs requests of run-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import { methodCatalog } from './method-catalog.ts';
import type { RUN_REQUESTS } from './run-contract.ts';
import { runSummaries } from './runs-summary.ts';

export const RUN_HANDLERS: AreaHandlers<keyof typeof RUN_REQUESTS> = {
  'methods.list': () => methodCatalog(),
  'runs.summaries': ({ store, params }) => runSummaries(store, params),
  'runs.metrics': ({ store, params }) => {
    const run = store.runs.get(params.id);
    const since = params.since ?? {};
    const metrics = store.metrics.names(run.id).map((name) => [name, store.metrics.series(run.id, name, { fromStep: (since[name] ?? -1) + 1 })] as const);
    return { run, metrics: Object.fromEntries(metrics) };
  },
};
