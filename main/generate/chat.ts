import { applyChatTemplate, type ChatMessage } from '../models/tokenizer/index.ts';
import type { OpenedModel } from '../models/open-model.ts';
import type { GenerateOptions, Generator } from './generator.ts';
import { StopStringMatcher } from './sampling.ts';

export type ChatOptions = Omit<GenerateOptions, 'decode' | 'eosTokenIds'> & {
  /** Extra stop ids on top of the model's EOS / end-of-turn ids. */
  readonly eosTokenIds?: readonly number[];
};

/** The token ids a chat model reads for `messages`: its chat template with the generation prompt, no extra specials. */
export const chatPromptIds = (opened: OpenedModel, messages: readonly ChatMessage[]): number[] =>
  opened.tokenizer.encode(applyChatTemplate(opened.tokenizer, messages, { addGenerationPrompt: true }), { addSpecialTokens: false });

/**
 * Chat: renders the messages with the model's chat template and the generation prompt, generates, and streams
 * text deltas: UTF-8 and byte-level pieces are held back until whole, and text that may begin a stop string
 * until it is known not to.
 */
export async function* chat(
  generator: Generator,
  opened: OpenedModel,
  messages: readonly ChatMessage[],
  o: ChatOptions,
): AsyncGenerator<string, void> {
  const ids = chatPromptIds(opened, messages);
  const detok = opened.tokenizer.createStreamDecoder({ skipSpecialTokens: true });
  const stops = new StopStringMatcher(o.stopStrings ?? []);
  const { stopStrings: _, ...generation } = o;
  const eos = [...opened.stopTokenIds, ...(o.eosTokenIds ?? [])];
  for await (const t of generator.generate(ids, { ...generation, eosTokenIds: eos, decode: (id) => detok.push(id) })) {
    const { text, stopped } = stops.push(t.text);
    if (text) yield text;
    if (stopped) return;
  }
  const { text, stopped } = stops.push(detok.flush());
  if (text) yield text;
  if (!stopped) {
    const rest = stops.flush();
    if (rest) yield rest;
  }
}
