// The requests a client has sent and not yet seen settled, and how a response reaches its request: events to its
// onEvent, then exactly one result or error settles it. The WebSocket bridge uses it (and the renderer tests' window.api
// over the in-process service); the preload keeps its own, since it may import nothing from the renderer.
import type { ApiMethod, ApiResults, ResponseMessage } from '../../main/service/api-contract.ts';
import type { ApiRequestOptions } from '../../main/service/window-api.ts';
import { ApiRequestError } from './api.ts';

interface Pending {
  readonly method: string;
  readonly resolve: (value: never) => void;
  readonly reject: (err: Error) => void;
  readonly onEvent?: (event: never) => void;
}

export class PendingRequests {
  private readonly open = new Map<string, Pending>();

  /** Registers request `id`; the promise settles when its result or error is delivered. */
  add<M extends ApiMethod>(id: string, method: M, onEvent?: ApiRequestOptions<M>['onEvent']): Promise<ApiResults[M]> {
    return new Promise<ApiResults[M]>((resolve, reject) => {
      this.open.set(id, { method, resolve: resolve as (v: never) => void, reject, ...(onEvent ? { onEvent: onEvent as (e: never) => void } : {}) });
    });
  }

  /** One response, routed to its request (responses of no open request are dropped). */
  deliver(message: ResponseMessage): void {
    const p = message.id === null ? undefined : this.open.get(message.id);
    if (!p || message.id === null) return;
    if (message.type === 'event') p.onEvent?.(message.event as never);
    else {
      this.open.delete(message.id);
      if (message.type === 'result') p.resolve(message.result as never);
      else p.reject(new ApiRequestError(p.method, message.error));
    }
  }

  /** Fails every open request with the message `why(id)` gives (the connection closed). */
  failAll(why: (id: string) => string): void {
    for (const [id, p] of this.open) p.reject(new ApiRequestError(p.method, { code: 'failed', message: why(id) }));
    this.open.clear();
  }
}
