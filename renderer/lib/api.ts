// The renderer's one way out: `window.api` (the preload's, or the WebSocket bridge's in a browser). Views and state
// classes call `api()`; tests install their own with `setApi`.
import type { ApiError, ApiMethod } from '../../main/service/api-contract.ts';
import type { ApiFailure, PeftStudioApi } from '../../main/service/window-api.ts';

export type {
  ApiError,
  ApiEvent,
  ApiInput,
  ApiMethod,
  ApiResults,
  AppInfo,
  ModelDescription,
  RunDetails,
  TrainResult,
} from '../../main/service/api-contract.ts';
export type { ApiRequestOptions, PeftStudioApi, PickPathOptions } from '../../main/service/window-api.ts';

declare global {
  interface Window {
    api?: PeftStudioApi;
  }
}

export class ApiRequestError extends Error implements ApiFailure {
  override readonly name = 'ApiRequestError';
  readonly code: ApiError['code'];
  readonly field?: string;
  constructor(readonly method: ApiMethod | string, error: ApiError) {
    super(error.message);
    this.code = error.code;
    if (error.field !== undefined) this.field = error.field;
  }
}

let installed: PeftStudioApi | undefined;

export const setApi = (api: PeftStudioApi | undefined): void => {
  installed = api;
};

export const api = (): PeftStudioApi => {
  const found = installed ?? (typeof window !== 'undefined' ? window.api : undefined);
  if (!found) throw new Error('window.api is missing: the page was opened outside PEFT Studio (the desktop app or `peft-studio serve`)');
  return found;
};

let counter = 0;
/** A request id unique within this page (for jobs.cancel / jobs.pause). */
export const newRequestId = (prefix = 'r'): string => `${prefix}-${Date.now().toString(36)}-${(++counter).toString(36)}`;

/** A message fit to show the user for anything a request threw. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
