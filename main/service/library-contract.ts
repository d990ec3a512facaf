// The API contract's requests for models, adapters: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; library-handlers.ts implements them.
export const LIBRARY_REQUESTS = {} as const;

export type LibraryResults = Record<never, never>;
export type LibraryEvents = Record<never, never>;
