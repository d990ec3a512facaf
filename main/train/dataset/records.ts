/** The normalised form of every dataset: chat conversations (roles + text) or raw text, each with its source line. */

export type DatasetFormat = 'alpaca' | 'sharegpt' | 'openai' | 'prompt-completion' | 'text';

export const DATASET_FORMATS: readonly DatasetFormat[] = ['openai', 'sharegpt', 'alpaca', 'prompt-completion', 'text'];

/** How each format looks, for messages and detection evidence. */
export const FORMAT_SIGNATURES: Readonly<Record<DatasetFormat, string>> = {
  openai: 'OpenAI messages: a "messages" list of {role, content}',
  sharegpt: 'ShareGPT: a "conversations" list of {from, value}',
  alpaca: 'Alpaca: "instruction", optional "input", "output"',
  'prompt-completion': '"prompt" and "completion"',
  text: 'raw "text"',
};

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** One message, as chat templates read it (extra fields such as tool_calls pass through to the template). */
export interface ChatTurn {
  role: ChatRole;
  content: string;
  tool_calls?: unknown;
  tool_call_id?: string;
  name?: string;
  reasoning_content?: string;
}

export interface ChatRecord {
  readonly kind: 'chat';
  /** 1-based line (Parquet: row) where the record starts. */
  readonly line: number;
  readonly messages: readonly ChatTurn[];
}

export interface TextRecord {
  readonly kind: 'text';
  readonly line: number;
  readonly text: string;
}

export type DatasetRecord = ChatRecord | TextRecord;

/** The identity of a record's content, for duplicate detection (exact, after normalisation). */
export const recordKey = (r: DatasetRecord): string =>
  r.kind === 'text' ? `t${r.text}` : `c${JSON.stringify(r.messages)}`;

/** transformers' ignore index: positions with this label carry no loss. */
export const IGNORE_INDEX = -100;
