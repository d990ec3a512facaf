/**
 * Where each assistant turn is in a conversation rendered with the model's chat template, as character spans of
 * the rendered text: from the end of the generation prompt (what `add_generation_prompt` renders before the
 * model speaks) to the end of the turn's end-of-turn marker (`<|im_end|>`, `<|eot_id|>`, `</s>`), without the
 * whitespace a template puts after it. That is the text the model produces for that turn at inference time.
 *
 * Templates are code, so the spans are found by rendering, never by parsing the template. The fast path is TRL's
 * prefix method: when the conversation before turn i with the generation prompt, and the conversation up to turn i,
 * are both prefixes of F and the latter ends with an end-of-turn token, the turn lies between them. Otherwise:
 *   - the full conversation F (what is trained on);
 *   - per assistant turn i: F again with turn i's content replaced by a sentinel, whose common prefix and suffix
 *     with F bracket the content as the template rendered it (it may strip, split <think> blocks, ...);
 *   - the conversation up to turn i with the generation prompt: where the turn starts, when it is a prefix of F;
 *   - the conversation up to and including turn i: where the turn ends, when it is a prefix of F (as in TRL's
 *     prefix method); when it is not (Qwen3 renders the last assistant turn with a <think> block that earlier
 *     turns lack), the end marker the template puts after the sentinel is matched after the content in F, or
 *     else the first end-of-turn marker between the content and the next message's content.
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

/**
 * Texts of end-of-turn tokens (llama.cpp's end-of-generation list, plus the tokenizer's EOS): a turn ends at the
 * first of them after its content, which keeps out what a template writes after it unconditionally (the original
 * Llama 3 template appends the next assistant header even without add_generation_prompt).
 */
const END_OF_TURN_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '</s>', '<EOT>', '<\uFF5Cend\u2581of\u2581sentence\uFF5C>'];

const endOfTurnMarkers = (tokenizer: Tokenizer): string[] => {
  const markers = END_OF_TURN_TOKENS.filter((t) => tokenizer.tokenToId(t) !== undefined);
  if (tokenizer.eos && !markers.includes(tokenizer.eos.content)) markers.push(tokenizer.eos.content);
  return markers;
};

/** The renderings of the conversation around turn i that locate it (rendered once each). */
interface TurnRenders {
  /** The turns before i with the generation prompt; undefined when the template cannot render them. */
  readonly prompt: string | undefined;
  /** The turns up to and including i, trailing whitespace removed. */
  readonly upTo: string;
}

const turnRenders = (tokenizer: Tokenizer, messages: readonly ChatMessage[], i: number, full: string, options: RenderChatOptions): TurnRenders => {
  let prompt: string | undefined;
  try {
    prompt = render(tokenizer, messages.slice(0, i), options, true);
  } catch {
    prompt = undefined; // e.g. a template that needs a first message, for a conversation opening with the assistant
  }
  const upTo = i === messages.length - 1 ? full : render(tokenizer, messages.slice(0, i + 1), options);
  return { prompt, upTo: upTo.trimEnd() };
};

const firstMarkerEnd = (text: string, markers: readonly string[]): number | undefined => {
  let cut: number | undefined;
  for (const marker of markers) {
    const k = text.indexOf(marker);
    if (k >= 0 && (cut === undefined || k + marker.length < cut)) cut = k + marker.length;
  }
  return cut;
};

/** Where turn i ends in F: after the end-of-turn marker the template writes after its content. */
const turnEnd = (tokenizer: Tokenizer, messages: readonly ChatMessage[], i: number, full: string, content: CharSpan, renders: TurnRenders, options: RenderChatOptions): number => {
  const markers = endOfTurnMarkers(tokenizer);
  // What follows the content when the turn is the last message, as far as F agrees with it.
  let after: string;
  if (renders.upTo.length >= content.end && full.startsWith(renders.upTo)) after = full.slice(content.end, renders.upTo.length);
  else {
    const marked = render(tokenizer, withSentinel(messages.slice(0, i + 1), i), options);
    const at = marked.indexOf(SENTINEL);
    const tail = at < 0 ? '' : marked.slice(at + SENTINEL.length).trimEnd();
    after = full.slice(content.end, content.end + commonPrefixLength(tail, full.slice(content.end)));
  }
  const cut = firstMarkerEnd(after, markers);
  if (cut !== undefined) return content.end + cut;
  // The template ends the turn differently when another message follows (an empty content before tool calls
  // changes its layout): the first end-of-turn marker after the content, before the next message's content.
  if (i + 1 < messages.length) {
    try {
      const next = contentRange(tokenizer, messages, i + 1, full, options).start;
      const k = firstMarkerEnd(full.slice(content.end, next), markers);
      if (k !== undefined) return content.end + k;
    } catch {
      // no bound from the next message: keep what the template writes after the content
    }
  }
  return content.end + after.trimEnd().length;
};

/** Where turn i starts in F: after the generation prompt, when rendering the turns before it with one is a prefix of F. */
const turnStart = (full: string, content: CharSpan, renders: TurnRenders): number => {
  const { prompt } = renders;
  return prompt !== undefined && prompt.length <= content.start && full.startsWith(prompt) ? prompt.length : content.start;
};

/**
 * The fast path, TRL's prefix method: when the turns before i with the generation prompt and the turns up to i
 * are both prefixes of F and the latter ends with an end-of-turn marker, turn i is what lies between them.
 */
const prefixSpan = (full: string, renders: TurnRenders, markers: readonly string[], previousEnd: number): CharSpan | undefined => {
  const { prompt, upTo } = renders;
  if (prompt === undefined || prompt.length < previousEnd || upTo.length <= prompt.length) return undefined;
  if (!full.startsWith(prompt) || !full.startsWith(upTo) || !markers.some((m) => upTo.endsWith(m))) return undefined;
  return { start: prompt.length, end: upTo.length };
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
  const markers = endOfTurnMarkers(tokenizer);
  const spans: AssistantSpan[] = [];
  let previousEnd = 0;
  for (const i of wanted) {
    const renders = turnRenders(tokenizer, messages, i, text, renderOptions);
    const fast = prefixSpan(text, renders, markers, previousEnd);
    if (fast) {
      spans.push({ ...fast, message: i });
      previousEnd = fast.end;
      continue;
    }
    const content = contentRange(tokenizer, messages, i, text, renderOptions);
    const start = Math.max(turnStart(text, content, renders), previousEnd);
    const end = turnEnd(tokenizer, messages, i, text, content, renders, renderOptions);
    if (content.start < previousEnd || end <= start) {
      throw new AssistantSpanError(`cannot locate assistant message ${i} in the rendered chat template (its text overlaps an earlier turn or is empty)`);
    }
    spans.push({ start, end, message: i });
    previousEnd = end;
  }
  return { text, spans };
};
