/**
 * Where each assistant turn is in a conversation rendered with the model's chat template, as character spans of
 * the rendered text: from the end of the generation prompt (what `add_generation_prompt` renders before the
 * model speaks) to the end of the turn's end-of-turn marker (`<|im_end|>`, `<|eot_id|>`, `</s>`), without the
 * whitespace a template puts after it. That is the text the model produces for that turn at inference time.
 *
 * Templates are code, so the spans are found by rendering, never by parsing the template:
 *   - the full conversation F (what is trained on);
 *   - per assistant turn i: F again with turn i's content replaced by a sentinel, whose common prefix and suffix
 *     with F bracket the content as the template rendered it (it may strip, split <think> blocks, ...);
 *   - the conversation up to turn i with the generation prompt: where the turn starts, when it is a prefix of F;
 *   - the conversation up to and including turn i: where the turn ends, when it is a prefix of F (as in TRL's
 *     prefix method); when it is not (Qwen3 renders the last assistant turn with a <think> block that earlier
 *     turns lack), the end marker the template puts after the sentinel is matched after the content in F.
 */
import { applyChatTemplate, type ChatMessage, type RenderChatOptions, type Tokenizer } from '../../models/tokenizer/index.ts';
import type { CharSpan } from './token-spans.ts';

export interface AssistantSpan extends CharSpan {
  /** Index of the message in the conversation. */
  readonly message: number;
}

export interface RenderedConversation {
  readonly text: string;
  readonly spans: AssistantSpan[];
}

/** Private-use characters no template touches (no whitespace to strip, no markup). */
const SENTINEL = '\uE000peft-studio-assistant-turn\uE001';

export class AssistantSpanError extends Error {
  override readonly name = 'AssistantSpanError';
}

const commonPrefixLength = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a.charCodeAt(k) === b.charCodeAt(k)) k++;
  return k;
};

const commonSuffixLength = (a: string, b: string, limit: number): number => {
  let k = 0;
  while (k < limit && a.charCodeAt(a.length - 1 - k) === b.charCodeAt(b.length - 1 - k)) k++;
  return k;
};

const render = (tokenizer: Tokenizer, messages: readonly ChatMessage[], options: RenderChatOptions, addGenerationPrompt = false): string =>
  applyChatTemplate(tokenizer, messages, { ...options, addGenerationPrompt });

const withSentinel = (messages: readonly ChatMessage[], i: number): ChatMessage[] =>
  messages.map((m, k) => (k === i ? { ...m, content: SENTINEL } : m));

/** Where turn i's content lies in F: [start, end). */
const contentRange = (tokenizer: Tokenizer, messages: readonly ChatMessage[], i: number, full: string, options: RenderChatOptions): CharSpan => {
  const marked = render(tokenizer, withSentinel(messages, i), options);
  const at = marked.indexOf(SENTINEL);
  if (at < 0 || marked.indexOf(SENTINEL, at + 1) >= 0) {
    throw new AssistantSpanError(`the chat template ${at < 0 ? 'leaves out' : 'repeats'} the content of message ${i} (an assistant turn)`);
  }
  const start = Math.min(commonPrefixLength(marked, full), at);
  const suffixLimit = Math.min(marked.length - at - SENTINEL.length, full.length - start);
  const end = full.length - commonSuffixLength(marked, full, suffixLimit);
  return { start, end: Math.max(start, end) };
};

/** Where turn i ends in F: after the end-of-turn marker the template writes after its content. */
const turnEnd = (tokenizer: Tokenizer, messages: readonly ChatMessage[], i: number, full: string, content: CharSpan, options: RenderChatOptions): number => {
  const upTo = render(tokenizer, messages.slice(0, i + 1), options).trimEnd();
  if (upTo.length >= content.end && full.startsWith(upTo)) return upTo.length;
  const marked = render(tokenizer, withSentinel(messages.slice(0, i + 1), i), options);
  const at = marked.indexOf(SENTINEL);
  if (at < 0) return content.end;
  const tail = marked.slice(at + SENTINEL.length).trimEnd();
  return content.end + commonPrefixLength(tail, full.slice(content.end));
};

/** Where turn i starts in F: after the generation prompt, when rendering the turns before it with one is a prefix of F. */
const turnStart = (tokenizer: Tokenizer, messages: readonly ChatMessage[], i: number, full: string, content: CharSpan, options: RenderChatOptions): number => {
  let prompt: string;
  try {
    prompt = render(tokenizer, messages.slice(0, i), options, true);
  } catch {
    return content.start; // e.g. a template that needs a first message, for a conversation opening with the assistant
  }
  return prompt.length <= content.start && full.startsWith(prompt) ? prompt.length : content.start;
};

/**
 * Renders a conversation and finds its assistant turns (all, or only the last). Throws ChatTemplateError when
 * the template rejects the conversation, AssistantSpanError when a turn cannot be located.
 */
export const renderWithAssistantSpans = (
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  options: RenderChatOptions & { readonly onlyLast?: boolean } = {},
): RenderedConversation => {
  const { onlyLast, ...renderOptions } = options;
  const text = render(tokenizer, messages, renderOptions);
  const assistants = messages.flatMap((m, i) => (m.role === 'assistant' ? [i] : []));
  const wanted = onlyLast ? assistants.slice(-1) : assistants;
  const spans: AssistantSpan[] = [];
  let previousEnd = 0;
  for (const i of wanted) {
    const content = contentRange(tokenizer, messages, i, text, renderOptions);
    const start = Math.max(turnStart(tokenizer, messages, i, text, content, renderOptions), previousEnd);
    const end = turnEnd(tokenizer, messages, i, text, content, renderOptions);
    if (content.start < previousEnd || end <= start) {
      throw new AssistantSpanError(`cannot locate assistant message ${i} in the rendered chat template (its text overlaps an earlier turn or is empty)`);
    }
    spans.push({ start, end, message: i });
    previousEnd = end;
  }
  return { text, spans };
};
