// What each request of the API contract does: a thin call into the service (train-run, sweep, chat, evaluate, ...)
// or the store. The dispatcher (api-server.ts) has validated the payload already; a handler reports progress
// through `emit` and hands the dispatcher what stops its work (`control`), so cancellation stays transport-free.
import { dirname, resolve } from 'node:path';
import packageJson from '../../package.json' with { type: 'json' };
import type { CombinationType } from '../peft/weighted.ts';
import { openModel } from '../models/open-model.ts';
import type { Store } from '../store/index.ts';
import { inspectDataset, type DatasetFormat } from '../train/dataset/index.ts';
import type { ApiEvent, ApiMethod, ApiParams, ApiResults } from './api-contract.ts';
import { exportAdapter, mergeAdapters } from './adapters.ts';
import { chatSideBySide } from './chat.ts';
import { compareRuns } from './compare-runs.ts';
import { estimateRun } from './estimate.ts';
import { evaluate } from './evaluate.ts';
import { parseRunConfig } from './run-config.ts';
import { parseSweepConfig, runSweep } from './sweep.ts';
import { trainRun } from './train-run.ts';
import { CHAT_HANDLERS } from './chat-handlers.ts';
import { DATASET_HANDLERS } from './dataset-handlers.ts';
import { LIBRARY_HANDLERS } from './library-handlers.ts';
import { describeModel } from './library-models.ts';
import { RUN_HANDLERS } from './run-handlers.ts';
import { SWEEP_HANDLERS } from './sweep-handlers.ts';

/** What stops a long request: cancel (any long request), pause (a training run). */
export interface JobControl {
  cancel(): void;
  pause?(): void;
}

export interface HandlerContext<M extends ApiMethod> {
  readonly store: Store;
  /** Which front end the connection serves. */
  readonly host: 'electron' | 'serve';
  readonly params: ApiParams<M>;
  readonly emit: (event: ApiEvent<M>) => void;
  /** Called once the work can be stopped; a cancel or pause that came earlier is applied at once. */
  readonly control: (c: JobControl) => void;
  /** Aborted when the request is cancelled or its connection closes. */
  readonly signal: AbortSignal;
  /** Requests of the same connection: jobs.cancel and jobs.pause find their target here. */
  readonly jobs: { cancel(requestId: string): boolean; pause(requestId: string): boolean };
}

export type Handler<M extends ApiMethod> = (ctx: HandlerContext<M>) => Promise<ApiResults[M]> | ApiResults[M];
/** One area's handlers (datasets, library, ...): exactly the requests its contract file defines. */
export type AreaHandlers<K extends ApiMethod> = { [M in K]: Handler<M> };
type Handlers = AreaHandlers<ApiMethod>;

/** Where config problems are reported: the request and the field, as the run-config file's are. */
const CONFIG_SOURCE = (method: ApiMethod) => `${method} params.config`;

export const HANDLERS: Handlers = {
  ...DATASET_HANDLERS,
  ...LIBRARY_HANDLERS,
  ...RUN_HANDLERS,
  ...SWEEP_HANDLERS,
  ...CHAT_HANDLERS,

  'models.describe': ({ params }) => describeModel(params.path, params.keepQuantized),
  'models.list': ({ store }) => store.models.list(),

  'datasets.inspect': ({ params }) =>
    inspectDataset(params.path, {
      ...(params.format ? { format: params.format as DatasetFormat } : {}),
      ...(params.model ? { tokenizer: openModel(params.model).tokenizer } : {}),
    }),
  'datasets.list': ({ store }) => store.datasets.list(),

  'runs.list': ({ store, params }) => store.runs.list(params),
  'runs.show': ({ store, params }) => {
    const run = store.runs.get(params.id);
    return {
      run,
      metrics: Object.fromEntries(store.metrics.names(run.id).map((n) => [n, store.metrics.series(run.id, n)])),
      checkpoints: store.checkpoints.list(run.id),
      adapters: store.adapters.list({ runId: run.id }),
    };
  },
  'runs.compare': ({ store, params }) => compareRuns(store, params.ids),

  'train.start': async ({ store, params, emit, control }) => {
    const config = parseRunConfig(params.config, CONFIG_SOURCE('train.start'));
    const out = await trainRun(config, store, {
      onEvent: emit,
      control: (trainer) => control({ cancel: () => trainer.cancel(), pause: () => trainer.pause() }),
      ...(params.resume ? { resume: true } : {}),
      ...(params.runId !== undefined ? { runId: params.runId } : {}),
    });
    const { result } = out;
    return {
      runId: out.runId,
      status: result.status,
      steps: result.steps,
      ...(result.lastEvalLoss !== undefined ? { lastEvalLoss: result.lastEvalLoss } : {}),
      ...(out.adapterDir ? { adapterDir: out.adapterDir } : {}),
      ...(out.modelDir ? { modelDir: out.modelDir } : {}),
      ...(out.resumedFrom !== undefined ? { resumedFrom: out.resumedFrom } : {}),
    };
  },

  'sweeps.start': ({ store, params, emit, control }) =>
    runSweep(parseSweepConfig(params.config, CONFIG_SOURCE('sweeps.start')), store, { onEvent: emit, control: (c) => control({ cancel: () => c.cancel() }) }),
  'sweeps.list': ({ store }) => store.sweeps.list(),
  'sweeps.show': ({ store, params }) => ({ sweep: store.sweeps.get(params.id), trials: store.sweeps.trials(params.id) }),

  'adapters.list': ({ store, params }) => store.adapters.list(params),
  'adapters.merge': ({ store, params, emit }) => {
    const { combination, ...rest } = params;
    return mergeAdapters({ ...rest, ...(combination ? { combination: combination as CombinationType } : {}), store, onEvent: emit });
  },
  'adapters.export': ({ params, emit }) => exportAdapter({ ...params, onEvent: emit }),

  'chat.sideBySide': ({ params, emit, signal }) => chatSideBySide({ ...params, signal, onToken: emit }),

  'eval.run': ({ store, params, emit }) => {
    const { record, format, ...rest } = params;
    return evaluate({ ...rest, ...(format ? { format: format as DatasetFormat } : {}), ...(record ? { store } : {}), onEvent: emit });
  },

  'estimate.run': ({ params }) =>
    estimateRun(parseRunConfig(params.config, CONFIG_SOURCE('estimate.run')), params.probe === undefined ? {} : { probe: params.probe }),

  'jobs.cancel': ({ params, jobs }) => ({ found: jobs.cancel(params.requestId) }),
  'jobs.pause': ({ params, jobs }) => ({ found: jobs.pause(params.requestId) }),

  'app.info': ({ store, host }) => ({
    version: packageJson.version,
    dataDir: store.db.name === ':memory:' ? ':memory:' : dirname(resolve(store.db.name)),
    host,
    platform: `${process.platform}-${process.arch}`,
  }),
};
