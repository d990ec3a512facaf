// The API contract's requests for datasets: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; dataset-handlers.ts implements them.
export const DATASET_REQUESTS = {} as const;

export type DatasetResults = Record<never, never>;
export type DatasetEvents = Record<never, never>;
