// A minimal client of the WebSocket API for the tests: request(), with the events each request streams.
import { WebSocket } from 'ws';
import type { ApiError, ApiMethod, ResponseMessage } from '../../main/service/api-contract.ts';

export interface Reply {
  readonly events: unknown[];
  readonly result?: unknown;
  readonly error?: ApiError;
}

export interface ApiTestClient {
  /** Sends a request; resolves with its events and its result or error. `onEvent` sees each event as it arrives. */
  request(id: string, method: ApiMethod | string, params?: unknown, onEvent?: (e: unknown) => void): Promise<Reply>;
  /** Sends raw text (malformed messages); resolves with the next error that names no request. */
  sendRaw(text: string): Promise<ApiError>;
  close(): void;
}

/** Opens a connection; rejects with the HTTP status of a refused upgrade ("unexpected response 401"). */
export const connectApi = (url: string, headers: Record<string, string> = {}): Promise<ApiTestClient> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const pending = new Map<string, { events: unknown[]; onEvent?: ((e: unknown) => void) | undefined; done: (r: Reply) => void }>();
    const orphanErrors: ((e: ApiError) => void)[] = [];
    ws.on('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.on('error', reject);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as ResponseMessage;
      if (m.id === null) return orphanErrors.shift()?.(m.type === 'error' ? m.error : { code: 'failed', message: 'not an error' });
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === 'event') {
        p.events.push(m.event);
        p.onEvent?.(m.event);
      } else {
        pending.delete(m.id);
        p.done(m.type === 'result' ? { events: p.events, result: m.result } : { events: p.events, error: m.error });
      }
    });
    ws.on('open', () =>
      resolve({
        request: (id, method, params, onEvent) =>
          new Promise((done) => {
            pending.set(id, { events: [], onEvent, done });
            ws.send(JSON.stringify({ id, method, ...(params === undefined ? {} : { params }) }));
          }),
        sendRaw: (text) =>
          new Promise((done) => {
            orphanErrors.push(done);
            ws.send(text);
          }),
        close: () => ws.close(),
      }),
    );
  });
