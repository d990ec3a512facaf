// The API contract's requests for chat: payload schemas (valibot), result and event types. api-contract.ts merges
// them into the one contract; chat-handlers.ts implements them.
//
// A chat session (chat-sessions.ts) keeps one opened model and its columns' graphs across prompts: chat.open, then
// chat.ask any number of times (streams ChatToken events; cancel it with jobs.cancel), chat.setColumn to switch one
// column's adapter without reopening the model, chat.close when done. Conversations stay with the client, which
// sends them with each chat.ask (one per column: each column has its own answers).
import * as v from 'valibot';
import type { ChatAnswer, ChatToken } from './chat.ts';
import type { ChatColumnSet, ChatOpened } from './chat-sessions.ts';
import type { SideBySideColumn } from '../generate/side-by-side.ts';
import { id, nonNegativeInt, path, positiveInt } from './contract-schemas.ts';

const MAX_COLUMNS = 5;
const MAX_ADAPTERS = 4;

const column = v.object({
  /** An adapter folder (any method; a fully fine-tuned model folder too), or null for the base model. */
  adapter: v.nullable(path),
});

export const chatMessage = v.object({ role: v.picklist(['system', 'user', 'assistant']), content: v.string() });

/** Sampling shared by every column. */
export const chatSampling = v.object({
  maxNewTokens: v.optional(positiveInt),
  temperature: v.optional(v.pipe(v.number(), v.minValue(0))),
  topK: v.optional(positiveInt),
  topP: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  minP: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  repetitionPenalty: v.optional(v.pipe(v.number(), v.minValue(0))),
  seed: v.optional(v.pipe(v.number(), v.integer())),
  stopStrings: v.optional(v.array(v.string())),
});

export const CHAT_REQUESTS = {
  /** Opens the model and every column's graph; a bad adapter fails naming its folder. `replace`: a session to release first. */
  'chat.open': v.object({
    model: path,
    columns: v.pipe(
      v.array(column),
      v.minLength(1, 'needs at least 1 column'),
      v.maxLength(MAX_COLUMNS, `at most ${MAX_COLUMNS} columns (the base model and ${MAX_ADAPTERS} adapters)`),
      v.check((cs) => cs.filter((c) => c.adapter !== null).length <= MAX_ADAPTERS, `at most ${MAX_ADAPTERS} adapter columns`),
    ),
    replace: v.optional(id),
  }),
  /** Puts `adapter` (null: the base model) in `column` (= the column count: adds a column), the model kept open. */
  'chat.setColumn': v.object({ sessionId: id, column: nonNegativeInt, adapter: v.nullable(path) }),
  'chat.removeColumn': v.object({ sessionId: id, column: nonNegativeInt }),
  /** Streams ChatToken events, then every column's answer. `history`: one conversation for all, or one per column. */
  'chat.ask': v.object({
    sessionId: id,
    prompt: v.string(),
    history: v.optional(v.union([v.array(chatMessage), v.array(v.array(chatMessage))], 'must be a list of messages, or one list per column')),
    system: v.optional(v.string()),
    sampling: v.optional(chatSampling),
  }),
  'chat.close': v.object({ sessionId: id }),
} as const;

/** The chat requests jobs.cancel stops (api-contract.ts's CANCELLABLE takes them in). */
export const CHAT_CANCELLABLE = ['chat.ask'] as const satisfies readonly (keyof typeof CHAT_REQUESTS)[];

export interface ChatResults {
  'chat.open': ChatOpened;
  'chat.setColumn': ChatColumnSet;
  'chat.removeColumn': { readonly columns: readonly SideBySideColumn[] };
  'chat.ask': { readonly answers: readonly ChatAnswer[] };
  /** Whether the session was open. */
  'chat.close': { readonly closed: boolean };
}

export interface ChatEvents {
  'chat.ask': ChatToken;
}
