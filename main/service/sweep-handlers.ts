// What the sweeps requests of sweep-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import type { SWEEP_REQUESTS } from './sweep-contract.ts';

export const SWEEP_HANDLERS: AreaHandlers<keyof typeof SWEEP_REQUESTS> = {};
