// window.api over Electron IPC (the PeftStudioApi of main/service/window-api.ts; in a browser on `peft-studio serve`
// the renderer builds the same object over WebSocket). Each request goes to main with its id; main answers with the
// service's responses as JSON, routed back here by id: events to the request's onEvent, then one result or error
// settles it. The electron objects come in as parameters, so tests drive this with fakes.
import type { ApiError, ApiMethod, ApiResults, ResponseMessage } from '../main/service/api-contract.ts';
import type { ApiRequestOptions, PeftStudioApi, PickPathOptions } from '../main/service/window-api.ts';
import { IPC_CHANNELS } from './channels.ts';

/** The parts of ipcRenderer the API uses. */
export interface PreloadIpc {
  send(channel: string, message: unknown): void;
  invoke(channel: string, payload: unknown): Promise<unknown>;
  on(channel: string, listener: (event: unknown, payload: unknown) => void): unknown;
}

export interface PreloadWebUtils {
  getPathForFile(file: File): string;
}

export interface ContextBridgeLike {
  exposeInMainWorld(key: string, api: unknown): void;
}

/** What main's pick-path channel answers (main/app/ipc-bridge.ts PickPathReply). */
type PickPathReply = { readonly ok: true; readonly path: string | null } | { readonly ok: false; readonly error: ApiError };

/**
 * A failed request as the page receives it. An Error loses every property but its message on the way through
 * contextBridge, so a failure crosses as a plain object (copied whole) that carries code and field, and whose
 * toString gives its message (what the renderer's messageOf prints for a non-Error).
 */
export interface WindowApiFailure {
  readonly name: 'ApiRequestError';
  readonly method: string;
  readonly code: ApiError['code'];
  readonly message: string;
  readonly field?: string;
  toString(): string;
}

const failure = (method: string, error: ApiError): WindowApiFailure => ({
  name: 'ApiRequestError',
  method,
  code: error.code,
  message: error.message,
  ...(error.field !== undefined ? { field: error.field } : {}),
  toString: () => error.message,
});

interface Pending {
  readonly method: string;
  readonly resolve: (value: never) => void;
  readonly reject: (reason: WindowApiFailure) => void;
  readonly onEvent?: (event: never) => void;
}

/** Plain JSON data, as `serve` carries it (undefined dropped, Dates as strings); throws on what JSON cannot hold. */
const asJson = (value: unknown): unknown => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

export const createWindowApi = (o: { readonly ipc: PreloadIpc; readonly webUtils: PreloadWebUtils }): PeftStudioApi => {
  const pending = new Map<string, Pending>();
  let counter = 0;

  o.ipc.on(IPC_CHANNELS.response, (_event, payload) => {
    let message: ResponseMessage;
    try {
      message = JSON.parse(String(payload)) as ResponseMessage;
    } catch (err) {
      return console.error(`PEFT Studio: an unreadable response from main: ${(err as Error).message}`);
    }
    if (message.id === null) return console.error(`PEFT Studio: a request was refused before it had an id: ${message.type === 'error' ? message.error.message : ''}`);
    const p = pending.get(message.id);
    if (!p) return;
    if (message.type === 'event') {
      try {
        p.onEvent?.(message.event as never);
      } catch (err) {
        console.error(`PEFT Studio: the event handler of ${p.method} (${message.id}) threw`, err);
      }
      return;
    }
    pending.delete(message.id);
    if (message.type === 'result') p.resolve(message.result as never);
    else p.reject(failure(p.method, message.error));
  });

  const request = <M extends ApiMethod>(method: M, params: unknown, options: ApiRequestOptions<M> = {}): Promise<ApiResults[M]> =>
    new Promise<ApiResults[M]>((resolve, reject) => {
      const id = options.id ?? `${method}-${Date.now().toString(36)}-${(++counter).toString(36)}`;
      if (typeof id !== 'string' || id === '') return reject(failure(method, { code: 'bad-request', field: 'id', message: 'id: must be a non-empty string' }));
      if (pending.has(id)) return reject(failure(method, { code: 'bad-request', field: 'id', message: `id: request ${id} is still running; give each request its own id` }));
      let body: unknown;
      try {
        body = asJson(params);
      } catch (err) {
        return reject(failure(method, { code: 'bad-request', field: 'params', message: `params: not JSON data: ${(err as Error).message}` }));
      }
      pending.set(id, { method, resolve: resolve as (value: never) => void, reject, ...(options.onEvent ? { onEvent: options.onEvent as (event: never) => void } : {}) });
      o.ipc.send(IPC_CHANNELS.request, { id, method, params: body });
    });

  return {
    host: 'electron',
    request,
    pathForFile: (file) => {
      // '' for a File that is not on disk (made in the page, or pasted).
      const path = o.webUtils.getPathForFile(file);
      return path === '' ? null : path;
    },
    pickPath: async (options: PickPathOptions) => {
      const reply = (await o.ipc.invoke(IPC_CHANNELS.pickPath, asJson(options))) as PickPathReply;
      if (!reply.ok) throw failure('pickPath', reply.error);
      return reply.path;
    },
  };
};

/** window.api, and nothing else, in the page's world. */
export const exposeWindowApi = (bridge: ContextBridgeLike, api: PeftStudioApi): void => {
  bridge.exposeInMainWorld('api', api);
};
