import type { ChatMessage, Tokenizer } from '../models/tokenizer/index.ts';
import { applyChatTemplate } from '../models/tokenizer/index.ts';
import type { Example } from './batch.ts';

export class ChatExampleError extends Error {
  override readonly name = 'ChatExampleError';
}

/**
 * Tokenizes a conversation through the model's chat template; by default only the assistant turns carry labels.
 * Each assistant turn's tokens are found by rendering the conversation up to that turn with the generation prompt
 * (the prefix) and up to its end, and checking that the prefix's tokens are a prefix of the whole.
 */
export const tokenizeChat = (tokenizer: Tokenizer, messages: readonly ChatMessage[], o: { readonly trainOn?: 'assistant' | 'all' } = {}): Example => {
  const ids = tokenizer.encode(applyChatTemplate(tokenizer, messages), { addSpecialTokens: false });
  if (o.trainOn === 'all') return { inputIds: ids, labels: ids };
  const labels: number[] = ids.map(() => -100);
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = tokenizer.encode(applyChatTemplate(tokenizer, messages.slice(0, i), { addGenerationPrompt: true }), { addSpecialTokens: false });
    const through = tokenizer.encode(applyChatTemplate(tokenizer, messages.slice(0, i + 1)), { addSpecialTokens: false });
    const isPrefix = (a: readonly number[], b: readonly number[]) => a.length <= b.length && a.every((v, k) => v === b[k]);
    if (!isPrefix(before, through) || !isPrefix(through, ids)) {
      throw new ChatExampleError(`the chat template does not render turn ${i} as a prefix of the conversation; cannot mask it`);
    }
    for (let k = before.length; k < through.length; k++) labels[k] = ids[k]!;
  });
  return { inputIds: ids, labels };
};
