// The API contract's requests for chat: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; chat-handlers.ts implements them.
export const CHAT_REQUESTS = {} as const;

export type ChatResults = Record<never, never>;
export type ChatEvents = Record<never, never>;
