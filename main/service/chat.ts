// Side-by-side chat for the app and the CLI: one prompt answered by the base model and up to four adapters of any
// method, streamed as text per column. Plain LoRA columns share one batched pass with the base; every other method's
// column runs its own graph with the same sampling settings and seed (generate/side-by-side.ts), and all columns
// stream together. openSideBySideChat keeps the model and its graphs for further prompts and switches a column's
// adapter without reopening them (the chat view, through chat-sessions.ts); chatSideBySide is one prompt, sessions
// released after.
import type { SessionOptions } from '../engine/onnx/runtime.ts';
import { chatPromptIds } from '../generate/chat.ts';
import type { FinishReason } from '../generate/multi-adapter.ts';
import type { SamplingOptions } from '../generate/sampling.ts';
import { SideBySideGenerator, type ColumnSwap, type PassKind, type SideBySideColumn } from '../generate/side-by-side.ts';
import { openModel, type OpenedModel } from '../models/open-model.ts';
import type { ChatMessage } from '../models/tokenizer/index.ts';
import { PeftError } from '../peft/errors.ts';

export interface ChatSampling extends SamplingOptions {
  /** Per column; default 128. */
  readonly maxNewTokens?: number;
  /** A column's answer ends before any of these. */
  readonly stopStrings?: readonly string[];
}

export interface OpenChatOptions {
  /** An HF folder or a .gguf file (its 4-bit blocks kept as they are), or a model the app has open already. */
  readonly model: string | OpenedModel;
  /** Adapter folders of any method (a fully fine-tuned model folder too), at most 4. */
  readonly adapters?: readonly string[];
  /** Answer with the base model too (default true). */
  readonly base?: boolean;
  /** The columns in order instead of `base` + `adapters`: an adapter folder each, or null for the base model. */
  readonly columns?: readonly (string | null)[];
  readonly session?: SessionOptions;
  /** Slots of the shared batched graph (see SideBySideOptions.slots); a chat view that switches adapters keeps 4. */
  readonly slots?: number;
  /** Told of every ORT session the chat creates. */
  readonly onSession?: (kind: PassKind, label: string) => void;
}

export interface AskOptions {
  readonly prompt: string;
  readonly system?: string;
  /** Earlier turns, before the prompt (after the system message): one conversation for every column, or one per column. */
  readonly history?: readonly ChatMessage[] | readonly (readonly ChatMessage[])[];
  readonly sampling?: ChatSampling;
  readonly signal?: AbortSignal;
  /** Text as it comes: each column's pieces in order, columns interleaved. */
  readonly onToken?: (t: ChatToken) => void;
}

export interface ChatToken {
  readonly column: number;
  readonly label: string;
  readonly text: string;
}

export interface ChatAnswer extends SideBySideColumn {
  readonly text: string;
  /** Tokens generated (the ending EOS not counted). */
  readonly tokens: number;
  readonly finish: FinishReason;
}

export interface SideBySideChat {
  readonly opened: OpenedModel;
  readonly columns: readonly SideBySideColumn[];
  /** The adapter configs' warnings (unknown fields, fields PEFT ignores). */
  readonly warnings: readonly string[];
  ask(o: AskOptions): Promise<ChatAnswer[]>;
  /** Puts another adapter (null: the base model) in column `index` (= the column count: a new column), keeping the model open. */
  setColumn(index: number, adapter: string | null): Promise<ColumnSwap>;
  removeColumn(index: number): Promise<void>;
  release(): Promise<void>;
}

const isPerColumn = (h: AskOptions['history']): h is readonly (readonly ChatMessage[])[] => Array.isArray(h?.[0]);

/** Opens the model and every column's graph; a bad adapter fails here, naming its folder and what is wrong. */
export const openSideBySideChat = async (o: OpenChatOptions): Promise<SideBySideChat> => {
  const opened = typeof o.model === 'string' ? openModel(o.model, { keepQuantized: true }) : o.model;
  const options = {
    ...(o.base === undefined ? {} : { base: o.base }),
    ...(o.session ? { session: o.session } : {}),
    ...(o.slots === undefined ? {} : { slots: o.slots }),
    ...(o.onSession ? { onSession: o.onSession } : {}),
  };
  const generator = o.columns ? await SideBySideGenerator.openColumns(opened.model, o.columns, options) : await SideBySideGenerator.open(opened.model, o.adapters ?? [], options);

  const ask = async (a: AskOptions): Promise<ChatAnswer[]> => {
    const { columns } = generator;
    const conversation = (history: readonly ChatMessage[]): number[] =>
      chatPromptIds(opened, [...(a.system ? [{ role: 'system' as const, content: a.system }] : []), ...history, { role: 'user', content: a.prompt }]);
    const { history } = a;
    if (isPerColumn(history) && history.length !== columns.length) throw new PeftError(`history has ${history.length} conversations for ${columns.length} columns: give one per column`);
    const promptIds = isPerColumn(history) ? history.map(conversation) : conversation(history ?? []);
    const decoders = columns.map(() => opened.tokenizer.createStreamDecoder({ skipSpecialTokens: true }));
    const texts = columns.map(() => '');
    const tokens = columns.map(() => 0);
    const finish: FinishReason[] = columns.map(() => 'length');
    const emit = (column: number, text: string) => {
      if (!text) return;
      texts[column] += text;
      a.onToken?.({ column, label: columns[column]!.label, text });
    };
    const { maxNewTokens, ...sampling } = a.sampling ?? {};
    const events = generator.generate(promptIds, {
      ...sampling,
      maxNewTokens: maxNewTokens ?? 128,
      eosTokenIds: opened.stopTokenIds,
      decode: (column, id) => decoders[column]!.push(id),
      ...(a.signal ? { signal: a.signal } : {}),
    });
    for await (const e of events) {
      if (e.kind === 'token') {
        tokens[e.column]!++;
        emit(e.column, e.text);
        continue;
      }
      finish[e.column] = e.reason;
      // Bytes the detokenizer still holds (an unfinished UTF-8 sequence) end the answer, unless a stop string did.
      emit(e.column, e.text + (e.reason === 'stop' ? '' : decoders[e.column]!.flush()));
    }
    return columns.map((c, i) => ({ ...c, text: texts[i]!, tokens: tokens[i]!, finish: finish[i]! }));
  };
  return {
    opened,
    get columns() {
      return generator.columns;
    },
    get warnings() {
      return generator.warnings;
    },
    ask,
    setColumn: (index, adapter) => generator.setColumn(index, adapter),
    removeColumn: (index) => generator.removeColumn(index),
    release: () => generator.release(),
  };
};

export type ChatSideBySideOptions = OpenChatOptions & AskOptions;

export interface ChatSideBySideResult {
  /** The model's folder or file. */
  readonly model: string;
  readonly columns: readonly ChatAnswer[];
  readonly warnings: readonly string[];
}

/** One prompt answered side by side by the base model and each adapter. */
export const chatSideBySide = async (o: ChatSideBySideOptions): Promise<ChatSideBySideResult> => {
  const chat = await openSideBySideChat(o);
  try {
    return { model: chat.opened.model.source, columns: await chat.ask(o), warnings: chat.warnings };
  } finally {
    await chat.release();
  }
};
