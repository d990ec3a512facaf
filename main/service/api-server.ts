// The API dispatcher, independent of any transport: a transport (Electron IPC, a WebSocket) opens one connection
// per client and hands it each incoming message; the connection validates it against the contract, runs the
// handler, and sends back the request's events and then exactly one result or error. Long work is cancelled by
// request id (jobs.cancel) or when its connection closes.
import * as v from 'valibot';
import { ExportError } from '../models/export/errors.ts';
import { ModelLoadError } from '../models/errors.ts';
import { HubError } from '../models/hub/errors.ts';
import { TokenizerError } from '../models/tokenizer/index.ts';
import { PeftError } from '../peft/errors.ts';
import { StoreError, type Store } from '../store/index.ts';
import { DatasetError } from '../train/dataset/index.ts';
import { CANCELLABLE, PAUSABLE, API_REQUESTS, REQUEST_MESSAGE, type ApiError, type ApiMethod, type ResponseMessage } from './api-contract.ts';
import { HANDLERS, type HandlerContext, type JobControl } from './api-handlers.ts';
import { ChatSessionError } from './chat-sessions.ts';
import { CompareRunsError } from './compare-runs.ts';
import { RunConfigError } from './run-config.ts';

/** Errors about what the user gave (a model, dataset, adapter, config, run id): the CLI's exit 2. */
const BAD_INPUT: readonly (abstract new (...args: never[]) => Error)[] = [
  ModelLoadError, HubError, PeftError, TokenizerError, RunConfigError, DatasetError, ExportError, CompareRunsError, ChatSessionError,
];
const BAD_INPUT_STORE_CODES = new Set(['not-found', 'invalid-input', 'conflict', 'in-use', 'invalid-transition']);

export const errorOf = (err: unknown): ApiError => {
  const message = err instanceof Error ? err.message : String(err);
  const badInput = BAD_INPUT.some((E) => err instanceof E) || (err instanceof StoreError && BAD_INPUT_STORE_CODES.has(err.code));
  return { code: badInput ? 'bad-input' : 'failed', message };
};

/** A malformed message or payload, naming the first offending field as a dot path under `prefix`. */
const invalid = (issues: readonly v.BaseIssue<unknown>[], prefix: string): ApiError => {
  const issue = issues[0]!;
  const path = v.getDotPath(issue);
  const field = path ? `${prefix}${prefix && '.'}${path}` : prefix || '(message)';
  return { code: 'bad-request', field, message: `${field}: ${issue.message}` };
};

interface Job {
  readonly method: ApiMethod;
  readonly abort: AbortController;
  control?: JobControl;
  cancelled: boolean;
  paused: boolean;
}

export interface ApiConnection {
  /** One incoming message: a JSON string or an already parsed object. Resolves once its response is sent. */
  receive(message: unknown): Promise<void>;
  /** The client left: its long work is cancelled and nothing more is sent. */
  close(): void;
  /** Request ids still running. */
  readonly running: readonly string[];
}

export interface ApiServerOptions {
  readonly store: Store;
  /** Which front end this server's connections serve (default 'serve'). */
  readonly host?: 'electron' | 'serve';
}

export class ApiServer {
  constructor(private readonly o: ApiServerOptions) {}

  connect(send: (message: ResponseMessage) => void): ApiConnection {
    const jobs = new Map<string, Job>();
    let open = true;
    const reply = (m: ResponseMessage) => {
      if (open) send(m);
    };
    const stop = (job: Job, how: 'cancel' | 'pause') => {
      if (how === 'cancel') {
        job.cancelled = true;
        job.abort.abort();
        job.control?.cancel();
      } else {
        job.paused = true;
        job.control?.pause?.();
      }
    };
    const jobControl = (how: 'cancel' | 'pause', allowed: readonly ApiMethod[]) => (requestId: string): boolean => {
      const job = jobs.get(requestId);
      if (!job) return false;
      if (!allowed.includes(job.method)) throw new StopNotSupportedError(`request ${requestId} (${job.method}) cannot be ${how === 'cancel' ? 'cancelled' : 'paused'}: only ${allowed.join(', ')} can`);
      stop(job, how);
      return true;
    };
    const control = { cancel: jobControl('cancel', CANCELLABLE), pause: jobControl('pause', PAUSABLE) };

    const receive = async (raw: unknown): Promise<void> => {
      let message: unknown = raw;
      if (typeof raw === 'string') {
        try {
          message = JSON.parse(raw);
        } catch (err) {
          return reply({ id: null, type: 'error', error: { code: 'bad-request', message: `a message must be JSON: ${(err as Error).message}` } });
        }
      }
      const parsed = v.safeParse(REQUEST_MESSAGE, message);
      if (!parsed.success) {
        const maybeId = (message as { id?: unknown } | null)?.id;
        return reply({ id: typeof maybeId === 'string' ? maybeId : null, type: 'error', error: invalid(parsed.issues, '') });
      }
      const { id, method } = parsed.output;
      if (jobs.has(id)) return reply({ id, type: 'error', error: { code: 'bad-request', field: 'id', message: `id: request ${id} is still running; give each request its own id` } });
      const params = v.safeParse(API_REQUESTS[method], parsed.output.params ?? {});
      if (!params.success) return reply({ id, type: 'error', error: invalid(params.issues, 'params') });

      const job: Job = { method, abort: new AbortController(), cancelled: false, paused: false };
      jobs.set(id, job);
      const ctx: HandlerContext<ApiMethod> = {
        store: this.o.store,
        host: this.o.host ?? 'serve',
        params: params.output as never,
        emit: (event) => reply({ id, type: 'event', event }),
        control: (c) => {
          job.control = c;
          // A cancel or pause may arrive while the work is still being prepared (model and dataset loading).
          if (job.cancelled) c.cancel();
          else if (job.paused) c.pause?.();
        },
        signal: job.abort.signal,
        jobs: control,
      };
      try {
        const handler = HANDLERS[method] as (c: HandlerContext<ApiMethod>) => unknown;
        const result = await handler(ctx);
        reply({ id, type: 'result', result: result as never });
      } catch (err) {
        reply({ id, type: 'error', error: err instanceof StopNotSupportedError ? { code: 'bad-request', field: 'params.requestId', message: err.message } : errorOf(err) });
      } finally {
        jobs.delete(id);
      }
    };

    return {
      receive,
      close: () => {
        open = false;
        for (const job of jobs.values()) if (CANCELLABLE.includes(job.method)) stop(job, 'cancel');
      },
      get running() {
        return [...jobs.keys()];
      },
    };
  }
}

class StopNotSupportedError extends Error {
  override readonly name = 'StopNotSupportedError';
}
