// The one typed contract between the app's front end (Electron renderer, a browser over `peft-studio serve`) and
// the service: each request's name → its payload schema (valibot, checked in main before any work starts) → its
// result type, and the events long work streams. Transports (IPC, WebSocket) carry these messages unchanged; the
// dispatcher (api-server.ts) is the only place that interprets them.
import * as v from 'valibot';
import { RUN_STATUSES, type Adapter, type Checkpoint, type Dataset, type MetricSample, type Model, type Run, type Sweep, type Trial } from '../store/index.ts';
import type { DatasetInspection } from '../train/dataset/index.ts';
import type { ExportAdapterOutcome, MergeAdaptersOutcome, AdapterEvent } from './adapters.ts';
import type { ChatSideBySideResult, ChatToken } from './chat.ts';
import type { RunComparison } from './compare-runs.ts';
import type { RunEstimate } from './estimate.ts';
import type { EvalEvent, EvalOutcome } from './evaluate.ts';
import type { SweepEvent, SweepOutcome } from './sweep.ts';
import type { RunEvent } from './train-run.ts';
import { CHAT_CANCELLABLE, CHAT_REQUESTS, chatMessage, chatSampling, type ChatEvents, type ChatResults } from './chat-contract.ts';
import { DATASET_CANCELLABLE, DATASET_REQUESTS, type DatasetEvents, type DatasetResults } from './dataset-contract.ts';
import { LIBRARY_CANCELLABLE, LIBRARY_REQUESTS, type LibraryEvents, type LibraryResults } from './library-contract.ts';
import { RUN_REQUESTS, type RunEvents, type RunResults } from './run-contract.ts';
import { SWEEP_REQUESTS, type SweepEvents, type SweepResults } from './sweep-contract.ts';

// The schemas every area's contract file shares live in contract-schemas.ts.
import { id, path, positiveInt } from './contract-schemas.ts';
const adapterPaths = v.pipe(v.array(path), v.maxLength(4, 'at most 4 adapters'));

/**
 * A run config as the run-config file has it (model, dataset, method, training, output). Its top level is checked
 * here; the fields inside `training` and `method` are checked by parseRunConfig and the method's own parser, which
 * name the field too.
 */
const runConfig = v.looseObject({
  name: v.optional(v.string()),
  model: path,
  dataset: v.looseObject({
    path,
    format: v.optional(v.string()),
    trainOn: v.optional(v.picklist(['assistant', 'all'])),
    evalFraction: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(0.999999))),
  }),
  method: v.looseObject({ peft_type: v.optional(v.string()) }),
  training: v.optional(v.record(v.string(), v.unknown())),
  output: path,
});

const sweepConfig = v.looseObject({
  ...runConfig.entries,
  sweep: v.looseObject({ mode: v.picklist(['fused', 'sequential']), space: v.record(v.string(), v.unknown()) }),
});

/** The requests this file defines; each area (datasets, library, runs, sweeps, chat) adds its own in its contract file. */
const CORE_REQUESTS = {
  'models.describe': v.object({ path, keepQuantized: v.optional(v.boolean()) }),
  'models.list': v.object({}),
  'datasets.inspect': v.object({ path, format: v.optional(v.string()), model: v.optional(path) }),
  'datasets.list': v.object({}),
  'runs.list': v.object({
    status: v.optional(v.picklist(RUN_STATUSES)),
    limit: v.optional(positiveInt),
    offset: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  }),
  'runs.show': v.object({ id }),
  'runs.compare': v.object({ ids: v.pipe(v.array(id), v.minLength(2, 'needs at least 2 run ids')) }),
  /** Starts (or, with resume, continues) a run; streams RunEvents; pause and cancel through `jobs.*`. */
  'train.start': v.object({ config: runConfig, resume: v.optional(v.boolean()), runId: v.optional(id) }),
  'sweeps.start': v.object({ config: sweepConfig }),
  'sweeps.list': v.object({}),
  'sweeps.show': v.object({ id }),
  'adapters.list': v.object({ runId: v.optional(id), baseModelId: v.optional(id) }),
  'adapters.merge': v.object({
    model: path,
    adapters: v.pipe(v.array(path), v.minLength(1, 'needs at least 1 adapter')),
    weights: v.optional(v.array(v.number())),
    combination: v.optional(v.string()),
    svdRank: v.optional(positiveInt),
    density: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
    out: path,
  }),
  'adapters.export': v.object({
    model: path,
    adapter: path,
    format: v.picklist(['hf', 'gguf', 'gguf-lora', 'ollama']),
    ggufType: v.optional(v.picklist(['f16', 'q8_0', 'f32'])),
    out: path,
    name: v.optional(v.string()),
  }),
  'chat.sideBySide': v.object({
    model: path,
    adapters: v.optional(adapterPaths),
    base: v.optional(v.boolean()),
    prompt: v.string(),
    system: v.optional(v.string()),
    history: v.optional(v.array(chatMessage)),
    sampling: v.optional(chatSampling),
  }),
  'eval.run': v.object({
    model: path,
    adapters: v.optional(v.array(path)),
    base: v.optional(v.boolean()),
    dataset: path,
    format: v.optional(v.string()),
    maxLength: v.optional(positiveInt),
    trainOn: v.optional(v.picklist(['assistant', 'all'])),
    microBatchSize: v.optional(positiveInt),
    /** Record adapter columns on the runs that trained them. */
    record: v.optional(v.boolean()),
  }),
  'estimate.run': v.object({ config: runConfig, probe: v.optional(v.boolean()) }),
  /** Stops the long request `requestId` of the same connection (a training run stops after its current step). */
  'jobs.cancel': v.object({ requestId: v.pipe(v.string(), v.minLength(1)) }),
  /** A training run: finish the current step, write a checkpoint, stop as 'paused' (continue with train.start resume). */
  'jobs.pause': v.object({ requestId: v.pipe(v.string(), v.minLength(1)) }),
  /** What the front end shows in its header and settings: version, data folder, execution provider. */
  'app.info': v.object({}),
} as const;

/** Each request's payload. Every long request can be cancelled by its request id (`jobs.cancel`). */
export const API_REQUESTS = {
  ...CORE_REQUESTS,
  ...DATASET_REQUESTS,
  ...LIBRARY_REQUESTS,
  ...RUN_REQUESTS,
  ...SWEEP_REQUESTS,
  ...CHAT_REQUESTS,
} as const;

export type ApiMethod = keyof typeof API_REQUESTS;
/** The requests whose work `jobs.cancel` stops early; `jobs.pause` applies to training only. */
export const CANCELLABLE: readonly ApiMethod[] = ['train.start', 'sweeps.start', 'chat.sideBySide', ...DATASET_CANCELLABLE, ...LIBRARY_CANCELLABLE, ...CHAT_CANCELLABLE];
export const PAUSABLE: readonly ApiMethod[] = ['train.start'];
export const API_METHODS = Object.keys(API_REQUESTS) as ApiMethod[];
export type ApiParams<M extends ApiMethod> = v.InferOutput<(typeof API_REQUESTS)[M]>;
/** What a client sends (optional fields may be left out). */
export type ApiInput<M extends ApiMethod> = v.InferInput<(typeof API_REQUESTS)[M]>;

export interface AppInfo {
  readonly version: string;
  /** Where runs, datasets and adapters are kept (the store's folder). */
  readonly dataDir: string;
  /** 'electron' for the desktop app, 'serve' for `peft-studio serve`. */
  readonly host: 'electron' | 'serve';
  readonly platform: string;
}

/** What `models.describe` tells about a model before anything is trained on it. */
export interface ModelDescription {
  readonly path: string;
  readonly format: 'hf' | 'gguf';
  readonly architecture: string;
  readonly modelType: string;
  /** Parameters in the checkpoint (every tensor's element count). */
  readonly parameters: number;
  /** Bytes on disk (the folder's files, or the .gguf). */
  readonly bytes: number;
  readonly contextLength: number;
  readonly layers: number;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** One template, several by name, or null when the model has none. */
  readonly chatTemplate: string | Readonly<Record<string, string>> | null;
  readonly stopTokenIds: readonly number[];
}

export interface RunDetails {
  readonly run: Run;
  readonly metrics: Readonly<Record<string, readonly MetricSample[]>>;
  readonly checkpoints: readonly Checkpoint[];
  readonly adapters: readonly Adapter[];
}

export interface TrainResult {
  readonly runId: number;
  readonly status: 'completed' | 'cancelled' | 'paused' | 'early-stopped';
  readonly steps: number;
  readonly lastEvalLoss?: number;
  readonly adapterDir?: string;
  readonly modelDir?: string;
  readonly resumedFrom?: number;
}

export interface ApiResults extends DatasetResults, LibraryResults, RunResults, SweepResults, ChatResults {
  'models.describe': ModelDescription;
  'models.list': Model[];
  'datasets.inspect': DatasetInspection;
  'datasets.list': Dataset[];
  'runs.list': Run[];
  'runs.show': RunDetails;
  'runs.compare': RunComparison;
  'train.start': TrainResult;
  'sweeps.start': SweepOutcome;
  'sweeps.list': Sweep[];
  'sweeps.show': { readonly sweep: Sweep; readonly trials: readonly Trial[] };
  'adapters.list': Adapter[];
  'adapters.merge': MergeAdaptersOutcome;
  'adapters.export': ExportAdapterOutcome;
  'chat.sideBySide': ChatSideBySideResult;
  'eval.run': EvalOutcome;
  'estimate.run': RunEstimate;
  /** Whether a running request of that id was found (and told to stop). */
  'jobs.cancel': { readonly found: boolean };
  'jobs.pause': { readonly found: boolean };
  'app.info': AppInfo;
}

/** The events each request streams before its result (never for the others). */
export interface ApiEvents extends DatasetEvents, LibraryEvents, RunEvents, SweepEvents, ChatEvents {
  'train.start': RunEvent;
  'sweeps.start': SweepEvent;
  'adapters.merge': AdapterEvent;
  'adapters.export': AdapterEvent;
  'chat.sideBySide': ChatToken;
  'eval.run': EvalEvent;
}
export type ApiEvent<M extends ApiMethod> = M extends keyof ApiEvents ? ApiEvents[M] : never;

// ---- the messages a transport carries ---------------------------------------------------------------------

/** Client → service. `id` is the client's, unique among its connection's open requests. */
export const REQUEST_MESSAGE = v.object({
  id: v.pipe(v.string(), v.minLength(1, 'must be a non-empty string')),
  method: v.picklist(API_METHODS, `must be one of ${API_METHODS.join(', ')}`),
  params: v.optional(v.unknown()),
});
export type RequestMessage = { readonly id: string; readonly method: ApiMethod; readonly params?: unknown };

/**
 * Why a request failed: `bad-request` a malformed message or payload (field names the offending field),
 * `bad-input` an unusable model, dataset, adapter or config (the CLI's exit 2), `failed` anything else.
 */
export type ApiErrorCode = 'bad-request' | 'bad-input' | 'failed';
export interface ApiError {
  readonly code: ApiErrorCode;
  readonly message: string;
  /** The offending payload field as a dot path, e.g. 'params.config.dataset.path'. */
  readonly field?: string;
}

/** Service → client: zero or more events, then exactly one result or error per request. */
export type ResponseMessage =
  | { readonly id: string; readonly type: 'event'; readonly event: ApiEvents[keyof ApiEvents] }
  | { readonly id: string; readonly type: 'result'; readonly result: ApiResults[ApiMethod] }
  | { readonly id: string | null; readonly type: 'error'; readonly error: ApiError };
