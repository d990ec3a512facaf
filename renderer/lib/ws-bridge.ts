// `window.api` for a browser on `peft-studio serve`: the same requests over one WebSocket (/api). Responses are
// routed to their request by id: events to its onEvent, then exactly one result or error settles it.
import type { ApiMethod, ApiResults } from '../../main/service/api-contract.ts';
import type { ResponseMessage } from '../../main/service/api-contract.ts';
import type { ApiRequestOptions, PeftStudioApi } from '../../main/service/window-api.ts';
import { ApiRequestError, newRequestId } from './api.ts';

interface Pending {
  readonly method: string;
  readonly resolve: (value: never) => void;
  readonly reject: (err: Error) => void;
  readonly onEvent?: (event: never) => void;
}

export interface WebSocketBridgeOptions {
  /** ws://host:port/api, with ?token=T when the server needs one. */
  readonly url: string;
  /** For tests outside a browser (the `ws` package's WebSocket); default the page's WebSocket. */
  readonly WebSocketImpl?: typeof WebSocket;
}

/** The API URL for the page this script was served from (keeps the page's ?token=). */
export const apiUrlForPage = (location: Location): string => {
  const token = new URLSearchParams(location.search).get('token');
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api${token ? `?token=${encodeURIComponent(token)}` : ''}`;
};

export const connectWebSocketApi = async (o: WebSocketBridgeOptions): Promise<PeftStudioApi & { close(): void }> => {
  const Impl = o.WebSocketImpl ?? WebSocket;
  const socket = new Impl(o.url);
  const pending = new Map<string, Pending>();
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot reach the PEFT Studio server at ${o.url.replace(/\?.*$/, '')}`)), { once: true });
  });
  socket.addEventListener('message', (e: MessageEvent) => {
    const message = JSON.parse(String(e.data)) as ResponseMessage;
    if (message.id === null) return;
    const p = pending.get(message.id);
    if (!p) return;
    if (message.type === 'event') p.onEvent?.(message.event as never);
    else {
      pending.delete(message.id);
      if (message.type === 'result') p.resolve(message.result as never);
      else p.reject(new ApiRequestError(p.method, message.error));
    }
  });
  socket.addEventListener('close', () => {
    for (const [id, p] of pending) p.reject(new ApiRequestError(p.method, { code: 'failed', message: `the connection to the server closed before request ${id} finished` }));
    pending.clear();
  });
  return {
    host: 'serve',
    request<M extends ApiMethod>(method: M, params: unknown, options: ApiRequestOptions<M> = {}): Promise<ApiResults[M]> {
      const id = options.id ?? newRequestId(method);
      return new Promise<ApiResults[M]>((resolve, reject) => {
        if (socket.readyState !== socket.OPEN) return reject(new ApiRequestError(method, { code: 'failed', message: 'not connected to the PEFT Studio server: reload the page' }));
        pending.set(id, { method, resolve: resolve as (v: never) => void, reject, ...(options.onEvent ? { onEvent: options.onEvent as (e: never) => void } : {}) });
        socket.send(JSON.stringify({ id, method, params }));
      });
    },
    pathForFile: () => null,
    pickPath: async () => null,
    close: () => socket.close(),
  };
};
