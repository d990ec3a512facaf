// What the datasets requests of dataset-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import type { DATASET_REQUESTS } from './dataset-contract.ts';

export const DATASET_HANDLERS: AreaHandlers<keyof typeof DATASET_REQUESTS> = {};
