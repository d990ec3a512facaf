// What the runs requests of run-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import type { RUN_REQUESTS } from './run-contract.ts';

export const RUN_HANDLERS: AreaHandlers<keyof typeof RUN_REQUESTS> = {};
