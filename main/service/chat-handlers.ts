// What the chat requests of chat-contract.ts do (see api-handlers.ts for the handler shape).
import type { AreaHandlers } from './api-handlers.ts';
import type { CHAT_REQUESTS } from './chat-contract.ts';

export const CHAT_HANDLERS: AreaHandlers<keyof typeof CHAT_REQUESTS> = {};
