// `window.api` for a browser on `peft-studio serve`: the same requests over one WebSocket (/api). Responses are
// routed to their request by id: events to its onEvent, then exactly one result or error settles it.
import type { ApiMethod, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import type { ApiRequestOptions, PeftStudioApi } from '../../main/service/window-api.ts';
import { ApiRequestError, newRequestId } from './api.ts';
import { PendingRequests } from './pending-requests.ts';

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
  const pending = new PendingRequests();
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot reach the PEFT Studio server at ${o.url.replace(/\?.*$/, '')}`)), { once: true });
  });
  socket.addEventListener('message', (e: MessageEvent) => pending.deliver(JSON.parse(String(e.data)) as ResponseMessage));
  socket.addEventListener('close', () => pending.failAll((id) => `the connection to the server closed before request ${id} finished`));
  return {
    host: 'serve',
    request<M extends ApiMethod>(method: M, params: unknown, options: ApiRequestOptions<M> = {}): Promise<ApiResults[M]> {
      const id = options.id ?? newRequestId(method);
      if (socket.readyState !== socket.OPEN) return Promise.reject(new ApiRequestError(method, { code: 'failed', message: 'not connected to the PEFT Studio server: reload the page' }));
      const settled = pending.add(id, method, options.onEvent);
      socket.send(JSON.stringify({ id, method, params }));
      return settled;
    },
    pathForFile: () => null,
    pickPath: async () => null,
    close: () => socket.close(),
  };
};
