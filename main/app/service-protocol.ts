// Messages between Electron main and the service worker (api-worker.ts), which owns the store and the ApiServer.
// Main validates each renderer message's envelope and forwards it tagged with its window's connection; the worker
// answers with the dispatcher's response already serialized (the same JSON `peft-studio serve` sends), so main
// routes it by id without reading it, and the preload parses it.
import type { RequestMessage } from '../service/api-contract.ts';

/** What main hands the worker at start (workerData). */
export interface ServiceWorkerData {
  /** The history database, under app.getPath('userData'). */
  readonly dbPath: string;
}

/** One connection per renderer (WebContents id): its requests, and its close (the window closed or reloaded). */
export type ToService =
  | { readonly type: 'request'; readonly conn: number; readonly message: RequestMessage }
  | { readonly type: 'close'; readonly conn: number }
  /** Cancel everything, close the store, exit. */
  | { readonly type: 'shutdown' };

export type FromService = {
  readonly type: 'response';
  readonly conn: number;
  readonly id: string | null;
  /** A result or an error: the request is over. */
  readonly final: boolean;
  /** The ResponseMessage as JSON. */
  readonly json: string;
};
