/**
 * Records → training examples: chat conversations rendered with the model's chat template (exactly the ids of
 * transformers' `apply_chat_template(messages, tokenize=True)`), labels masked with -100 so that by default only
 * assistant turns are trained; raw text encoded with the tokenizer's special tokens, EOS appended, every token
 * trained. Then the max-length policy: drop, or truncate on the left or right — never keeping an example whose
 * kept window has no trained token (dropped, with a problem saying so). Long raw texts are split into windows.
 */
import { applyChatTemplate, ChatTemplateError, type ChatMessage, type RenderChatOptions, type Tokenizer } from '../../models/tokenizer/index.ts';
import { AssistantSpanError, renderWithAssistantSpans } from './assistant-spans.ts';
import { ProblemLog, sortProblems, type DatasetProblem } from './problems.ts';
import { IGNORE_INDEX, type ChatRecord, type DatasetRecord, type TextRecord } from './records.ts';
import { computeTokenStats, type TokenStats } from './token-stats.ts';
import { maskTokensInSpans } from './token-spans.ts';

export { IGNORE_INDEX };

/** Which tokens of a conversation carry loss. */
export type TrainOn = 'assistant' | 'last-assistant' | 'all';

/** What to do with an example longer than maxLength. */
export type TruncationPolicy = 'drop' | 'left' | 'right';

export interface TokenizeOptions {
  /** Longest example in tokens; undefined: no limit. */
  readonly maxLength?: number;
  /** Default 'right' (keep the beginning), as TRL does. */
  readonly truncation?: TruncationPolicy;
  /** Default 'assistant': every assistant turn, nothing else. */
  readonly trainOn?: TrainOn;
  /** Raw texts longer than maxLength become several examples instead of being truncated. Default true. */
  readonly splitLongText?: boolean;
  /** Chat template options: a named template, template kwargs such as { enable_thinking: false }, tools. */
  readonly chat?: Omit<RenderChatOptions, 'addGenerationPrompt'>;
  /** The file name for problems. */
  readonly file?: string;
}

/** One training example: labels aligned with the ids (transformers' convention; the loss shifts them). */
export interface TokenizedExample {
  readonly inputIds: number[];
  readonly labels: number[];
  /** Line of the record it came from. */
  readonly line: number;
  readonly truncated: boolean;
}

export interface TokenizedDataset {
  readonly examples: TokenizedExample[];
  readonly problems: DatasetProblem[];
  readonly stats: TokenStats;
}

/** Tokens that carry loss: labels other than -100, past the first position (nothing predicts the first token). */
export const trainedTokenCount = (labels: readonly number[]): number => {
  let n = 0;
  for (let i = 1; i < labels.length; i++) if (labels[i] !== IGNORE_INDEX) n++;
  return n;
};

/** A conversation's ids and labels (before any truncation). */
export const tokenizeConversation = (tokenizer: Tokenizer, record: ChatRecord, options: Pick<TokenizeOptions, 'trainOn' | 'chat'> = {}): { inputIds: number[]; labels: number[] } => {
  const trainOn = options.trainOn ?? 'assistant';
  const messages = record.messages as unknown as ChatMessage[];
  const chat = options.chat ?? {};
  const rendered =
    trainOn === 'all'
      ? { text: applyChatTemplate(tokenizer, messages, chat), spans: [] }
      : renderWithAssistantSpans(tokenizer, messages, { ...chat, onlyLast: trainOn === 'last-assistant' });
  for (const [k, m] of record.messages.entries()) {
    if (m.role === 'tool' && m.content.trim() !== '' && !rendered.text.includes(m.content.trim())) {
      throw new ChatTemplateError(`the model's chat template leaves out tool messages (messages[${k}]); remove them or use a model whose template has a tool role`);
    }
  }
  const inputIds = tokenizer.encode(rendered.text, { addSpecialTokens: false });
  if (trainOn === 'all') return { inputIds, labels: [...inputIds] };
  const mask = maskTokensInSpans(tokenizer, rendered.text, inputIds, rendered.spans);
  return { inputIds, labels: inputIds.map((id, k) => (mask[k] ? id : IGNORE_INDEX)) };
};

/** A raw text's ids (with the tokenizer's BOS if it adds one, EOS appended); every token trained. */
export const tokenizeText = (tokenizer: Tokenizer, record: TextRecord): { inputIds: number[]; labels: number[] } => {
  const inputIds = tokenizer.encode(record.text);
  const eos = tokenizer.eos?.id;
  if (eos !== undefined && inputIds.at(-1) !== eos) inputIds.push(eos);
  return { inputIds, labels: [...inputIds] };
};

interface Window {
  readonly inputIds: number[];
  readonly labels: number[];
}

/** The kept window of an over-long example, or why there is none. */
const truncate = (ids: number[], labels: number[], maxLength: number, policy: TruncationPolicy): Window | string => {
  if (policy === 'drop') return `${ids.length} tokens, over the max length of ${maxLength}; dropped (truncation policy "drop")`;
  const from = policy === 'left' ? ids.length - maxLength : 0;
  const window = { inputIds: ids.slice(from, from + maxLength), labels: labels.slice(from, from + maxLength) };
  if (trainedTokenCount(window.labels) === 0) {
    return (
      `${ids.length} tokens, over the max length of ${maxLength}, and the ${policy === 'left' ? 'last' : 'first'} ${maxLength} hold no ` +
      `assistant token; dropped (raise the max length${policy === 'right' ? ' or truncate on the left' : ''})`
    );
  }
  return window;
};

/** Tokenizes records for training; problems (template errors, dropped examples) name the record's line. */
export const tokenizeDataset = (records: readonly DatasetRecord[], tokenizer: Tokenizer, options: TokenizeOptions = {}): TokenizedDataset => {
  const log = new ProblemLog(options.file ?? 'dataset');
  const maxLength = options.maxLength;
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 2)) {
    throw new RangeError(`maxLength must be an integer of at least 2, got ${maxLength}`);
  }
  const policy = options.truncation ?? 'right';
  const examples: TokenizedExample[] = [];
  let dropped = 0;
  let truncated = 0;
  if (records.some((r) => r.kind === 'text') && tokenizer.eos === undefined) {
    log.warning(records.find((r) => r.kind === 'text')!.line, 'the tokenizer has no EOS token: raw texts are trained without one at their end');
  }
  for (const record of records) {
    let encoded: { inputIds: number[]; labels: number[] };
    try {
      encoded = record.kind === 'text' ? tokenizeText(tokenizer, record) : tokenizeConversation(tokenizer, record, options);
    } catch (err) {
      if (!(err instanceof ChatTemplateError || err instanceof AssistantSpanError)) throw err;
      log.error(record.line, `the chat template cannot render this conversation: ${err.message}`);
      dropped++;
      continue;
    }
    if (record.kind === 'chat' && trainedTokenCount(encoded.labels) === 0) {
      log.error(record.line, 'no token of this conversation is trained (the chat template renders no assistant text)');
      dropped++;
      continue;
    }
    const { inputIds, labels } = encoded;
    if (maxLength === undefined || inputIds.length <= maxLength) {
      examples.push({ inputIds, labels, line: record.line, truncated: false });
      continue;
    }
    if (record.kind === 'text' && (options.splitLongText ?? true)) {
      for (let from = 0; from < inputIds.length; from += maxLength) {
        const piece = { inputIds: inputIds.slice(from, from + maxLength), labels: labels.slice(from, from + maxLength) };
        if (piece.inputIds.length >= 2) examples.push({ ...piece, line: record.line, truncated: false });
      }
      continue;
    }
    const window = truncate(inputIds, labels, maxLength, policy);
    if (typeof window === 'string') {
      log.warning(record.line, window);
      dropped++;
      continue;
    }
    truncated++;
    examples.push({ ...window, line: record.line, truncated: true });
  }
  return { examples, problems: sortProblems(log.problems), stats: computeTokenStats(examples, { dropped, truncated }) };
};
