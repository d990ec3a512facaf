// The API contract's requests for runs: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; run-handlers.ts implements them.
export const RUN_REQUESTS = {} as const;

export type RunResults = Record<never, never>;
export type RunEvents = Record<never, never>;
