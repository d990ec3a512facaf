// The API the renderer sees as `window.api`: the preload exposes it over Electron IPC, and a browser page served by
// `peft-studio serve` builds the same object over WebSocket (renderer/lib/ws-bridge.ts). Types only: the preload
// and the renderer import nothing else from main/.
import type { ApiError, ApiEvent, ApiInput, ApiMethod, ApiResults } from './api-contract.ts';

export interface ApiRequestOptions<M extends ApiMethod> {
  /** The request's id, to cancel or pause it later with jobs.cancel / jobs.pause; one is made up when left out. */
  readonly id?: string;
  /** The events a long request streams before its result (training steps, chat tokens, download progress, ...). */
  readonly onEvent?: (event: ApiEvent<M>) => void;
}

export interface PickPathOptions {
  readonly kind: 'file' | 'folder';
  readonly title?: string;
  /** e.g. [{ name: 'GGUF', extensions: ['gguf'] }] */
  readonly filters?: readonly { readonly name: string; readonly extensions: readonly string[] }[];
}

export interface PeftStudioApi {
  /** Which front end this is: the desktop app, or a browser on `peft-studio serve`. */
  readonly host: 'electron' | 'serve';
  /** Sends one request; resolves with its result or rejects with an ApiError-shaped error. */
  request<M extends ApiMethod>(method: M, params: ApiInput<M>, options?: ApiRequestOptions<M>): Promise<ApiResults[M]>;
  /** The path on disk of a dropped File (desktop only: a browser never reveals it), else null. */
  pathForFile(file: File): string | null;
  /** A native open dialog (desktop only); null when cancelled or in a browser. */
  pickPath(options: PickPathOptions): Promise<string | null>;
}

/** What a rejected request carries (the contract's ApiError, as an Error). */
export interface ApiFailure extends Error {
  readonly code: ApiError['code'];
  readonly field?: string;
}
