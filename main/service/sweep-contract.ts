// The API contract's requests for sweeps: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; sweep-handlers.ts implements them.
export const SWEEP_REQUESTS = {} as const;

export type SweepResults = Record<never, never>;
export type SweepEvents = Record<never, never>;
