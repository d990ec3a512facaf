// What the models, adapters requests of library-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import type { LIBRARY_REQUESTS } from './library-contract.ts';

export const LIBRARY_HANDLERS: AreaHandlers<keyof typeof LIBRARY_REQUESTS> = {};
