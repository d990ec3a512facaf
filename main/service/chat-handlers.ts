// What the chat requests of chat-contract.ts do (see api-handlers.ts for the handler shape): thin calls into the
// store's chat sessions (chat-sessions.ts), which keep each opened model and its graphs between requests.
import type { AreaHandlers } from './api-handlers.ts';
import type { CHAT_REQUESTS } from './chat-contract.ts';
import { chatSessionsFor } from './chat-sessions.ts';

export const CHAT_HANDLERS: AreaHandlers<keyof typeof CHAT_REQUESTS> = {
  'chat.open': ({ store, params }) =>
    chatSessionsFor(store).openSession({ model: params.model, columns: params.columns, ...(params.replace === undefined ? {} : { replace: params.replace }) }),
  'chat.setColumn': ({ store, params }) => chatSessionsFor(store).setColumn(params.sessionId, params.column, params.adapter),
  'chat.removeColumn': ({ store, params }) => chatSessionsFor(store).removeColumn(params.sessionId, params.column),
  'chat.ask': ({ store, params, emit, signal }) => {
    const { sessionId, ...ask } = params;
    return chatSessionsFor(store).ask(sessionId, { ...ask, signal, onToken: emit });
  },
  'chat.close': async ({ store, params }) => ({ closed: await chatSessionsFor(store).close(params.sessionId) }),
};
